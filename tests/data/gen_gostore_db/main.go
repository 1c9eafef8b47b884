// Command gen_gostore_db writes and reads SQLite files the way go-store does.
//
// It uses go-store's access path as benchmarks/go/store.go reproduces it: database/sql with
// modernc.org/sqlite, one connection, PRAGMA journal_mode=WAL and busy_timeout=5000, the
// `entries` table, and go-store's own statements.
//
//	go run . write ../gostore_written.db   # regenerate the committed fixture
//	go run . dump  some.db                 # print every live entry as JSON lines (for tests)
//	go run . set some.db GROUP KEY VALUE   # one go-store Set on an existing file (for tests)
//	go run . delete some.db GROUP KEY      # one go-store Delete on an existing file (for tests)
package main

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite"
)

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
	getAllSQL = "SELECT entry_key, entry_value FROM entries WHERE group_name = ? AND (expires_at IS NULL OR expires_at > ?)"
	groupsSQL = "SELECT DISTINCT group_name FROM entries WHERE (expires_at IS NULL OR expires_at > ?) ORDER BY group_name"
	deleteSQL = "DELETE FROM entries WHERE group_name = ? AND entry_key = ?"
)

// Fixed expiry times, so the Python tests know them exactly.
const (
	farFuture = int64(4102444800000) // 2100-01-01T00:00:00Z
	longAgo   = int64(1000000000000) // 2001-09-09T01:46:40Z
)

func open(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	for _, stmt := range []string{"PRAGMA journal_mode=WAL", "PRAGMA busy_timeout=5000", schemaSQL} {
		if _, err := db.Exec(stmt); err != nil {
			db.Close()
			return nil, fmt.Errorf("%s: %w", stmt, err)
		}
	}
	return db, nil
}

func write(path string) error {
	os.Remove(path)
	os.Remove(path + "-wal")
	os.Remove(path + "-shm")
	db, err := open(path)
	if err != nil {
		return err
	}
	defer db.Close()
	plain := [][3]string{
		{"config", "colour", "blue"},
		{"config", "size", "10"},
		{"config", "", "empty key"},
		{"config", "empty value", ""},
		{"", "empty group", "x"},
		{"unicode", "日本語", "中文值"},
		{"unicode", "العربية", "مرحبا"},
		{"unicode", "emoji 🎉", "😀\U0010FFFF"},
		{"unicode", "accented é", "ñ ü ø"},
		{"nul", "a\x00b", "c\x00d"},
		{"nul", "\x00", "\x00\x00"},
		{"sql", "'; DROP TABLE entries; --", "1' OR '1'='1"},
		{"special", "tab\tnew\nline", "quote\" back\\slash"},
		{"long", strings.Repeat("k", 10000), strings.Repeat("v", 10000)},
	}
	for _, e := range plain {
		if _, err := db.Exec(setSQL, e[0], e[1], e[2]); err != nil {
			return err
		}
	}
	ttl := []struct {
		group, key, value string
		expires           int64
	}{
		{"session", "future", "still here", farFuture},
		{"session", "past", "gone", longAgo},
		{"expired-only", "k", "v", longAgo},
	}
	for _, e := range ttl {
		if _, err := db.Exec(setWithTTLSQL, e.group, e.key, e.value, e.expires); err != nil {
			return err
		}
	}
	// Go's SetWithTTL arithmetic (time.Now().Add(ttl).UnixMilli()): 50 years ahead, 1 hour ago.
	relative := []struct {
		key string
		ttl time.Duration
	}{{"relative-future", 50 * 365 * 24 * time.Hour}, {"relative-past", -time.Hour}}
	for _, e := range relative {
		expires := time.Now().Add(e.ttl).UnixMilli()
		if _, err := db.Exec(setWithTTLSQL, "session", e.key, "relative", expires); err != nil {
			return err
		}
	}
	// Leave a plain database file behind, as go-store does on Close.
	_, err = db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}

type entry struct {
	Group string `json:"group"`
	Key   string `json:"key"`
	Value string `json:"value"`
}

func dump(path string) error {
	db, err := open(path)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now().UnixMilli()
	rows, err := db.Query(groupsSQL, now)
	if err != nil {
		return err
	}
	var groups []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return err
		}
		groups = append(groups, g)
	}
	rows.Close()
	out := json.NewEncoder(os.Stdout)
	for _, g := range groups {
		rows, err := db.Query(getAllSQL, g, now)
		if err != nil {
			return err
		}
		var found []entry
		for rows.Next() {
			var e entry
			e.Group = g
			if err := rows.Scan(&e.Key, &e.Value); err != nil {
				return err
			}
			found = append(found, e)
		}
		rows.Close()
		for _, e := range found {
			// Read each key again through Get's statement, as go-store's Get does.
			var value string
			var expiresAt sql.NullInt64
			err := db.QueryRow(getSQL, e.Group, e.Key).Scan(&value, &expiresAt)
			if errors.Is(err, sql.ErrNoRows) || value != e.Value {
				return fmt.Errorf("get %q/%q disagrees with getAll", e.Group, e.Key)
			}
			if err := out.Encode(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// exec runs one of go-store's write statements on an existing file, as go-store would.
func exec(path, statement string, args ...any) error {
	db, err := open(path)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec(statement, args...)
	return err
}

func main() {
	want := map[string]int{"write": 3, "dump": 3, "set": 6, "delete": 5}
	if len(os.Args) < 2 || want[os.Args[1]] != len(os.Args) {
		fmt.Fprintln(os.Stderr, "usage: gen_gostore_db write|dump PATH | set PATH G K V | delete PATH G K")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "write":
		err = write(os.Args[2])
	case "dump":
		err = dump(os.Args[2])
	case "set":
		err = exec(os.Args[2], setSQL, os.Args[3], os.Args[4], os.Args[5])
	case "delete":
		err = exec(os.Args[2], deleteSQL, os.Args[3], os.Args[4])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen_gostore_db:", err)
		os.Exit(1)
	}
}
