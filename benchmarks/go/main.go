// Command gostore-bench runs the go-store comparison benchmarks against the
// go-store-equivalent store in store.go and prints one result per benchmark
// (a human table, or one JSON object per line with -json).
//
// It is a plain program rather than `go test -bench` so that a script can
// drive it and parse its output.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"
)

const (
	group          = "bench"
	value          = "value"
	sqliteModule   = "modernc.org/sqlite"
	fallbackSQLite = "v1.62.0" // the version pinned in go.mod
	maxCalibrateN  = 1_000_000_000
)

// keys[i] = "key-<i>", precomputed so string formatting is not measured.
var keys []string

// fileVals alternate in the file-backed write benchmarks. They have the same
// length, so a row is overwritten in place, but its bytes change: rewriting an
// identical value would dirty no page, and the commit would need no fsync.
var fileVals = [2]string{"value-a", "value-b"}

func initKeys(n int) {
	if len(keys) >= n {
		return
	}
	keys = make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
}

// B is a minimal stand-in for testing.B: the op runs b.N times and can pause
// the timer around untimed work.
type B struct {
	N       int
	timing  bool
	start   time.Time
	elapsed time.Duration
}

func (b *B) StartTimer() {
	if !b.timing {
		b.start = time.Now()
		b.timing = true
	}
}

func (b *B) StopTimer() {
	if b.timing {
		b.elapsed += time.Since(b.start)
		b.timing = false
	}
}

// benchmark describes one benchmark. setup builds the fixture once (untimed)
// and returns the measured function and a cleanup.
type benchmark struct {
	name  string
	per   string // what one "op" is
	quick int    // fixed iteration count under -quick
	setup func(cfg *config) (run func(b *B), cleanup func(), err error)
}

type config struct {
	synchronous string
	rounds      int
	quick       bool
	target      time.Duration
}

type result struct {
	Name          string    `json:"name"`
	NsPerOp       float64   `json:"ns_per_op"`
	Rounds        []float64 `json:"rounds"`
	Iterations    int       `json:"iterations"`
	Per           string    `json:"per"`
	Impl          string    `json:"impl"`
	Synchronous   string    `json:"synchronous"`
	SQLiteVersion string    `json:"sqlite_version"`
	SetupSeconds  float64   `json:"setup_seconds"`
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// ---- fixtures -------------------------------------------------------------

func memoryStore(cfg *config) (*Store, func(), error) {
	s, err := OpenStore(":memory:", cfg.synchronous)
	if err != nil {
		return nil, nil, err
	}
	return s, func() { s.Close() }, nil
}

func fileStore(cfg *config) (*Store, func(), error) {
	dir, err := os.MkdirTemp("", "gostore-bench-*")
	if err != nil {
		return nil, nil, err
	}
	s, err := OpenStore(filepath.Join(dir, "bench.db"), cfg.synchronous)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return s, func() { s.Close(); os.RemoveAll(dir) }, nil
}

// fill inserts keys[0:n] with value in transactions of 10,000 rows using the
// Set statement (setup only, never timed).
func fill(s *Store, n int) error {
	initKeys(n)
	for start := 0; start < n; start += 10_000 {
		end := min(start+10_000, n)
		tx, err := s.DB().Begin()
		if err != nil {
			return err
		}
		for i := start; i < end; i++ {
			if _, err := tx.Exec(setSQL, group, keys[i], value); err != nil {
				tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

func getAllBench(n int) func(cfg *config) (func(b *B), func(), error) {
	return func(cfg *config) (func(b *B), func(), error) {
		s, cleanup, err := memoryStore(cfg)
		if err != nil {
			return nil, nil, err
		}
		if err := fill(s, n); err != nil {
			cleanup()
			return nil, nil, err
		}
		if m, err := s.GetAll(group); err != nil || len(m) != n {
			cleanup()
			return nil, nil, fmt.Errorf("GetAll check: got %d entries, err %v; want %d", len(m), err, n)
		}
		return func(b *B) {
			for i := 0; i < b.N; i++ {
				if _, err := s.GetAll(group); err != nil {
					panic(err)
				}
			}
		}, cleanup, nil
	}
}

func setBench(file bool) func(cfg *config) (func(b *B), func(), error) {
	return func(cfg *config) (func(b *B), func(), error) {
		open := memoryStore
		if file {
			open = fileStore
		}
		s, cleanup, err := open(cfg)
		if err != nil {
			return nil, nil, err
		}
		initKeys(10_000)
		if !file {
			return func(b *B) {
				for i := 0; i < b.N; i++ {
					if err := s.Set(group, keys[i%10_000], value); err != nil {
						panic(err)
					}
				}
			}, cleanup, nil
		}
		// File-backed: op number seq (one counter for the whole instance, so it
		// continues across calibration and rounds) writes keys[seq%10000] with
		// fileVals[(seq/10000)%2]. The stored bytes change on every op, so every
		// commit really writes (and fsyncs at synchronous=full), as in go-store's
		// own BenchmarkSet_FileBacked.
		seq := 0
		return func(b *B) {
			for i := 0; i < b.N; i++ {
				if err := s.Set(group, keys[seq%10_000], fileVals[(seq/10_000)%2]); err != nil {
					panic(err)
				}
				seq++
			}
		}, cleanup, nil
	}
}

func benchmarks() []benchmark {
	return []benchmark{
		{name: "Set", per: "op", quick: 20, setup: setBench(false)},
		{name: "Get", per: "op", quick: 20, setup: func(cfg *config) (func(b *B), func(), error) {
			s, cleanup, err := memoryStore(cfg)
			if err != nil {
				return nil, nil, err
			}
			if err := fill(s, 1_000); err != nil {
				cleanup()
				return nil, nil, err
			}
			return func(b *B) {
				for i := 0; i < b.N; i++ {
					if _, err := s.Get(group, keys[i%1_000]); err != nil {
						panic(err)
					}
				}
			}, cleanup, nil
		}},
		{name: "GetAll", per: "op", quick: 2, setup: getAllBench(10_000)},
		{name: "Set_FileBacked", per: "op", quick: 20, setup: setBench(true)},
		{name: "GetAll_VaryingSize/10", per: "op", quick: 20, setup: getAllBench(10)},
		{name: "GetAll_VaryingSize/100", per: "op", quick: 20, setup: getAllBench(100)},
		{name: "GetAll_VaryingSize/1000", per: "op", quick: 5, setup: getAllBench(1_000)},
		{name: "GetAll_VaryingSize/10000", per: "op", quick: 2, setup: getAllBench(10_000)},
		{name: "SetGet_Parallel", per: "set+get pair (4 goroutines, wall time / pairs)", quick: 20,
			setup: func(cfg *config) (func(b *B), func(), error) {
				s, cleanup, err := memoryStore(cfg)
				if err != nil {
					return nil, nil, err
				}
				initKeys(10_000)
				const workers = 4
				return func(b *B) {
					var wg sync.WaitGroup
					for w := 0; w < workers; w++ {
						// Split b.N pairs as evenly as possible; worker w owns
						// indices j in [lo, hi).
						lo, hi := b.N*w/workers, b.N*(w+1)/workers
						wg.Add(1)
						go func() {
							defer wg.Done()
							for j := lo; j < hi; j++ {
								k := keys[j%10_000]
								if err := s.Set(group, k, value); err != nil {
									panic(err)
								}
								if _, err := s.Get(group, k); err != nil {
									panic(err)
								}
							}
						}()
					}
					wg.Wait()
				}, cleanup, nil
			}},
		{name: "Count_10K", per: "op", quick: 20, setup: func(cfg *config) (func(b *B), func(), error) {
			s, cleanup, err := memoryStore(cfg)
			if err != nil {
				return nil, nil, err
			}
			if err := fill(s, 10_000); err != nil {
				cleanup()
				return nil, nil, err
			}
			if n, err := s.Count(group); err != nil || n != 10_000 {
				cleanup()
				return nil, nil, fmt.Errorf("Count check: got %d, err %v; want 10000", n, err)
			}
			return func(b *B) {
				for i := 0; i < b.N; i++ {
					if _, err := s.Count(group); err != nil {
						panic(err)
					}
				}
			}, cleanup, nil
		}},
		{name: "Delete", per: "op (timed in batches of 1000 after an untimed fill)", quick: 20,
			setup: func(cfg *config) (func(b *B), func(), error) {
				s, cleanup, err := memoryStore(cfg)
				if err != nil {
					return nil, nil, err
				}
				initKeys(1_000)
				return func(b *B) {
					b.StopTimer()
					for done := 0; done < b.N; {
						batch := min(1_000, b.N-done)
						if err := fill(s, batch); err != nil {
							panic(err)
						}
						b.StartTimer()
						for i := 0; i < batch; i++ {
							if err := s.Delete(group, keys[i]); err != nil {
								panic(err)
							}
						}
						b.StopTimer()
						done += batch
					}
				}, cleanup, nil
			}},
		{name: "SetWithTTL", per: "op", quick: 20, setup: func(cfg *config) (func(b *B), func(), error) {
			s, cleanup, err := memoryStore(cfg)
			if err != nil {
				return nil, nil, err
			}
			initKeys(10_000)
			return func(b *B) {
				for i := 0; i < b.N; i++ {
					if err := s.SetWithTTL(group, keys[i%10_000], value, time.Hour); err != nil {
						panic(err)
					}
				}
			}, cleanup, nil
		}},
		{name: "Render", per: "op", quick: 20, setup: func(cfg *config) (func(b *B), func(), error) {
			s, cleanup, err := memoryStore(cfg)
			if err != nil {
				return nil, nil, err
			}
			for i := 0; i < 50; i++ {
				if err := s.Set(group, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)); err != nil {
					cleanup()
					return nil, nil, err
				}
			}
			const src = "{{ .k1 }}-{{ .k2 }}-{{ .k3 }}"
			out, err := s.Render(src, group)
			if err != nil || out != "v1-v2-v3" {
				cleanup()
				return nil, nil, fmt.Errorf("Render check: got %q, err %v; want %q", out, err, "v1-v2-v3")
			}
			return func(b *B) {
				for i := 0; i < b.N; i++ {
					if _, err := s.Render(src, group); err != nil {
						panic(err)
					}
				}
			}, cleanup, nil
		}},
		{name: "SetMany_FileBacked", per: "batch of 10000", quick: 1,
			setup: func(cfg *config) (func(b *B), func(), error) {
				// go-store has no bulk API: a user would wrap Set's statement in
				// one transaction. One op = the whole 10,000-key batch. Batch
				// number batch (counted across calibration and rounds) writes
				// fileVals[batch%2] to every key, so every batch really writes.
				s, cleanup, err := fileStore(cfg)
				if err != nil {
					return nil, nil, err
				}
				initKeys(10_000)
				db := s.DB()
				batch := 0
				return func(b *B) {
					for i := 0; i < b.N; i++ {
						v := fileVals[batch%2]
						batch++
						tx, err := db.Begin()
						if err != nil {
							panic(err)
						}
						for k := 0; k < 10_000; k++ {
							if _, err := tx.Exec(setSQL, group, keys[k], v); err != nil {
								panic(err)
							}
						}
						if err := tx.Commit(); err != nil {
							panic(err)
						}
					}
				}, cleanup, nil
			}},
		{name: "Get_1M", per: "op", quick: 20, setup: func(cfg *config) (func(b *B), func(), error) {
			s, cleanup, err := memoryStore(cfg)
			if err != nil {
				return nil, nil, err
			}
			if err := fill(s, 1_000_000); err != nil {
				cleanup()
				return nil, nil, err
			}
			return func(b *B) {
				for i := 0; i < b.N; i++ {
					if _, err := s.Get(group, keys[(i*7919)%1_000_000]); err != nil {
						panic(err)
					}
				}
			}, cleanup, nil
		}},
	}
}

// ---- timing ---------------------------------------------------------------

func runOnce(run func(b *B), n int) time.Duration {
	runtime.GC()
	b := &B{N: n}
	b.StartTimer()
	run(b)
	b.StopTimer()
	return b.elapsed
}

// calibrate picks an iteration count whose run takes about cfg.target, in the
// manner of testing.B: grow n from 1, predicting from the last run, by at
// most 100x per step and at least +1.
func calibrate(run func(b *B), target time.Duration) int {
	n := 1
	for {
		d := runOnce(run, n)
		if d >= target || n >= maxCalibrateN {
			return n
		}
		next := maxCalibrateN
		if d > 0 {
			next = int(float64(target) * 1.2 * float64(n) / float64(d))
		}
		next = min(next, 100*n, maxCalibrateN)
		if next <= n {
			next = n + 1
		}
		n = next
	}
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

func sqliteModuleVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == sqliteModule {
				if dep.Replace != nil {
					return dep.Replace.Version
				}
				return dep.Version
			}
		}
	}
	return fallbackSQLite
}

func sqliteLibraryVersion() string {
	s, err := OpenStore(":memory:", "")
	if err != nil {
		return "unknown"
	}
	defer s.Close()
	var v string
	if err := s.DB().QueryRow("SELECT sqlite_version()").Scan(&v); err != nil {
		return "unknown"
	}
	return v
}

func main() {
	benchRE := flag.String("bench", ".", "regular expression selecting benchmarks by name")
	rounds := flag.Int("rounds", 5, "timed rounds per benchmark (median is reported)")
	synchronous := flag.String("synchronous", "full", "PRAGMA synchronous level: full|normal|off")
	jsonOut := flag.Bool("json", false, "print one JSON object per line")
	quick := flag.Bool("quick", false, "smoke test: 1 round with a tiny fixed iteration count")
	target := flag.Duration("target", 200*time.Millisecond, "approximate duration of one timed round")
	list := flag.Bool("list", false, "list benchmark names and exit")
	flag.Parse()

	syncLevel := strings.ToLower(*synchronous)
	switch syncLevel {
	case "full", "normal", "off":
	default:
		fmt.Fprintf(os.Stderr, "invalid -synchronous %q (want full, normal or off)\n", *synchronous)
		os.Exit(2)
	}
	re, err := regexp.Compile(*benchRE)
	if err != nil {
		fmt.Fprintf(os.Stderr, "invalid -bench: %v\n", err)
		os.Exit(2)
	}
	if *rounds < 1 {
		fmt.Fprintln(os.Stderr, "-rounds must be >= 1")
		os.Exit(2)
	}
	cfg := &config{synchronous: syncLevel, rounds: *rounds, quick: *quick, target: *target}
	if cfg.quick {
		cfg.rounds = 1
	}

	if *list {
		for _, bm := range benchmarks() {
			fmt.Println(bm.name)
		}
		return
	}

	impl := fmt.Sprintf("go-store-equivalent (database/sql + %s %s)", sqliteModule, sqliteModuleVersion())
	libVersion := sqliteLibraryVersion()
	if !*jsonOut {
		fmt.Printf("impl: %s\nsqlite: %s   synchronous: %s   rounds: %d   go: %s   GOMAXPROCS: %d\n\n",
			impl, libVersion, syncLevel, cfg.rounds, runtime.Version(), runtime.GOMAXPROCS(0))
		fmt.Printf("%-26s %14s %12s  %-40s %s\n", "benchmark", "ns/op (median)", "iterations", "rounds (ns/op)", "per")
	}

	enc := json.NewEncoder(os.Stdout)
	matched := 0
	for _, bm := range benchmarks() {
		if !re.MatchString(bm.name) {
			continue
		}
		matched++
		setupStart := time.Now()
		run, cleanup, err := bm.setup(cfg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: setup: %v\n", bm.name, err)
			os.Exit(1)
		}
		setupSeconds := time.Since(setupStart).Seconds()

		n := bm.quick
		if !cfg.quick {
			n = calibrate(run, cfg.target)
		}
		perRound := make([]float64, cfg.rounds)
		for r := range perRound {
			d := runOnce(run, n)
			perRound[r] = round1(float64(d.Nanoseconds()) / float64(n))
		}
		cleanup()

		res := result{
			Name: bm.name, NsPerOp: round1(median(perRound)), Rounds: perRound, Iterations: n,
			Per: bm.per, Impl: impl, Synchronous: syncLevel, SQLiteVersion: libVersion,
			SetupSeconds: math.Round(setupSeconds*100) / 100,
		}
		if *jsonOut {
			must(enc.Encode(res))
		} else {
			rs := make([]string, len(perRound))
			for i, x := range perRound {
				rs[i] = fmt.Sprintf("%.0f", x)
			}
			fmt.Printf("%-26s %14.0f %12d  %-40s %s\n", res.Name, res.NsPerOp, res.Iterations,
				strings.Join(rs, " "), res.Per)
		}
	}
	if matched == 0 {
		fmt.Fprintf(os.Stderr, "no benchmark matches %q\n", *benchRE)
		os.Exit(1)
	}
}
