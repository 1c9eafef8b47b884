package main

// This file mirrors go-store's (dappco.re/go/core/store) SQLite access path so
// that the benchmark numbers are comparable with the real library, which is
// not reachable through the Go module proxy from here. What is reproduced:
//
//   - database/sql with the pure-Go driver modernc.org/sqlite (driver "sqlite")
//   - db.SetMaxOpenConns(1): one connection, every call serialised on it
//   - PRAGMA journal_mode=WAL and PRAGMA busy_timeout=5000 on open
//   - the same `entries` table and primary key
//   - every method issues its SQL through db.Exec / db.QueryRow / db.Query
//     with no explicitly prepared statements, exactly as go-store does
//   - lazy TTL expiry in Get (expired row is deleted on read) and the
//     `expires_at IS NULL OR expires_at > now` filter in Count / GetAll
//   - Render parses the text/template on every call
//
// What is deliberately left out, because it is not on the measured path of the
// benchmarks: go-store's event watchers/callbacks (none registered in its own
// benchmarks), the background purge goroutine, the journal and workspaces.
// The only addition is PRAGMA synchronous=<level>, so runs can be compared at a
// matching durability level; its default (FULL) is SQLite's own default, i.e.
// what go-store runs with.

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"text/template"
	"time"

	_ "modernc.org/sqlite"
)

// ErrNotFound is returned by Get for a missing or expired key.
var ErrNotFound = errors.New("store: not found")

const (
	schemaSQL = `CREATE TABLE IF NOT EXISTS entries (
		group_name  TEXT NOT NULL,
		entry_key   TEXT NOT NULL,
		entry_value TEXT NOT NULL,
		expires_at  INTEGER,
		PRIMARY KEY (group_name, entry_key)
	)`

	setSQL = "INSERT INTO entries (group_name, entry_key, entry_value, expires_at) VALUES (?, ?, ?, NULL) " +
		"ON CONFLICT(group_name, entry_key) DO UPDATE SET entry_value = excluded.entry_value, expires_at = NULL"

	setWithTTLSQL = "INSERT INTO entries (group_name, entry_key, entry_value, expires_at) VALUES (?, ?, ?, ?) " +
		"ON CONFLICT(group_name, entry_key) DO UPDATE SET entry_value = excluded.entry_value, expires_at = excluded.expires_at"

	getSQL    = "SELECT entry_value, expires_at FROM entries WHERE group_name = ? AND entry_key = ?"
	deleteSQL = "DELETE FROM entries WHERE group_name = ? AND entry_key = ?"
	countSQL  = "SELECT COUNT(*) FROM entries WHERE group_name = ? AND (expires_at IS NULL OR expires_at > ?)"
	getAllSQL = "SELECT entry_key, entry_value FROM entries WHERE group_name = ? AND (expires_at IS NULL OR expires_at > ?)"
)

// Store is the go-store-equivalent key-value store.
type Store struct {
	db *sql.DB
}

// OpenStore opens (or creates) a store at path (":memory:" for an in-memory
// database). synchronous is "full", "normal" or "off".
func OpenStore(path, synchronous string) (*Store, error) {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// Serialise all access on one connection, as go-store does (SQLite has a
	// single writer, and a :memory: database lives in its connection).
	db.SetMaxOpenConns(1)

	pragmas := []string{
		"PRAGMA journal_mode=WAL",
		"PRAGMA busy_timeout=5000",
	}
	if synchronous != "" {
		pragmas = append(pragmas, "PRAGMA synchronous="+strings.ToUpper(synchronous))
	}
	for _, pragma := range pragmas {
		if _, err := db.Exec(pragma); err != nil {
			db.Close()
			return nil, fmt.Errorf("%s: %w", pragma, err)
		}
	}
	if _, err := db.Exec(schemaSQL); err != nil {
		db.Close()
		return nil, fmt.Errorf("create schema: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the underlying database.
func (s *Store) Close() error { return s.db.Close() }

// DB exposes the handle, for the transaction-based bulk emulation and setup.
func (s *Store) DB() *sql.DB { return s.db }

// Set stores a value with no expiry (clearing any previous TTL).
func (s *Store) Set(group, key, value string) error {
	if _, err := s.db.Exec(setSQL, group, key, value); err != nil {
		return fmt.Errorf("store.Set: %w", err)
	}
	return nil
}

// SetWithTTL stores a value that expires ttl from now.
func (s *Store) SetWithTTL(group, key, value string, ttl time.Duration) error {
	expiresAt := time.Now().Add(ttl).UnixMilli()
	if _, err := s.db.Exec(setWithTTLSQL, group, key, value, expiresAt); err != nil {
		return fmt.Errorf("store.SetWithTTL: %w", err)
	}
	return nil
}

// Get returns a value; an expired entry is deleted lazily and reported as
// ErrNotFound.
func (s *Store) Get(group, key string) (string, error) {
	var value string
	var expiresAt sql.NullInt64
	err := s.db.QueryRow(getSQL, group, key).Scan(&value, &expiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("store.Get: %w", err)
	}
	if expiresAt.Valid && expiresAt.Int64 <= time.Now().UnixMilli() {
		if _, err := s.db.Exec(deleteSQL, group, key); err != nil {
			return "", fmt.Errorf("store.Get: delete expired: %w", err)
		}
		return "", ErrNotFound
	}
	return value, nil
}

// Delete removes a key (no error if it does not exist).
func (s *Store) Delete(group, key string) error {
	if _, err := s.db.Exec(deleteSQL, group, key); err != nil {
		return fmt.Errorf("store.Delete: %w", err)
	}
	return nil
}

// Count returns the number of live keys in a group.
func (s *Store) Count(group string) (int, error) {
	var n int
	if err := s.db.QueryRow(countSQL, group, time.Now().UnixMilli()).Scan(&n); err != nil {
		return 0, fmt.Errorf("store.Count: %w", err)
	}
	return n, nil
}

// GetAll returns every live key/value pair of a group.
func (s *Store) GetAll(group string) (map[string]string, error) {
	rows, err := s.db.Query(getAllSQL, group, time.Now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store.GetAll: %w", err)
	}
	defer rows.Close()
	result := make(map[string]string)
	for rows.Next() {
		var key, value string
		if err := rows.Scan(&key, &value); err != nil {
			return nil, fmt.Errorf("store.GetAll: scan: %w", err)
		}
		result[key] = value
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store.GetAll: rows: %w", err)
	}
	return result, nil
}

// Render executes a text/template over the group's key/value map. As in
// go-store the template is parsed on every call.
func (s *Store) Render(templateSource, group string) (string, error) {
	values, err := s.GetAll(group)
	if err != nil {
		return "", fmt.Errorf("store.Render: %w", err)
	}
	tmpl, err := template.New("render").Parse(templateSource)
	if err != nil {
		return "", fmt.Errorf("store.Render: parse: %w", err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, values); err != nil {
		return "", fmt.Errorf("store.Render: execute: %w", err)
	}
	return b.String(), nil
}
