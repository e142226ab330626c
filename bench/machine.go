package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Machine describes where a run happened.
type Machine struct {
	CPUModel   string            `json:"cpu_model"`
	Cores      int               `json:"cores"`
	MemoryGiB  float64           `json:"memory_gib"`
	Kernel     string            `json:"kernel"`
	GoVersion  string            `json:"go_version"`
	PostgreSQL string            `json:"postgresql"`
	PGVector   string            `json:"pgvector"`
	PGSettings map[string]string `json:"pg_settings"`
}

// pgSettingNames are the server settings a report shows.
var pgSettingNames = []string{"shared_buffers", "maintenance_work_mem", "work_mem", "effective_cache_size",
	"max_parallel_maintenance_workers", "max_parallel_workers", "max_worker_processes", "synchronous_commit",
	"wal_level", "max_wal_size", "jit"}

// ReadMachine describes this machine and the PostgreSQL server behind pool.
func ReadMachine(ctx context.Context, pool *pgxpool.Pool) (Machine, error) {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), PGSettings: map[string]string{}}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				m.MemoryGiB = round3(kb / (1 << 20))
			}
		}
	}
	var uts syscall.Utsname
	if syscall.Uname(&uts) == nil {
		m.Kernel = utsString(uts.Sysname[:]) + " " + utsString(uts.Release[:])
	}
	if err := pool.QueryRow(ctx, "SELECT version()").Scan(&m.PostgreSQL); err != nil {
		return m, fmt.Errorf("read PostgreSQL version: %w", err)
	}
	if err := pool.QueryRow(ctx, "SELECT extversion FROM pg_extension WHERE extname = 'vector'").Scan(&m.PGVector); err != nil {
		return m, fmt.Errorf("read pgvector version: %w", err)
	}
	for _, name := range pgSettingNames {
		var v string
		if err := pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err == nil {
			m.PGSettings[name] = v
		}
	}
	return m, nil
}

func utsString(b []int8) string {
	var s strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		s.WriteByte(byte(c))
	}
	return s.String()
}

// clockTick is USER_HZ, the unit of /proc CPU times on Linux.
const clockTick = 100

// CPUSample is a reading of the CPU time used so far by this process, the fake API process, the
// PostgreSQL backends serving one database, and the whole machine.
type CPUSample struct {
	At       time.Time
	Self     time.Duration // this process: worker, publisher, embedded NATS, store client
	Fake     time.Duration // the openai-fake process
	Postgres time.Duration // backends whose process title names the bench database
	Busy     time.Duration // every CPU of the machine, not idle
	Total    time.Duration // every CPU of the machine
}

// SampleCPU reads CPU times now. fakePID 0 means no fake process; db is the database whose
// backends are counted.
func SampleCPU(fakePID int, db string) CPUSample {
	s := CPUSample{At: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.Self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if fakePID > 0 {
		s.Fake = procCPU(fakePID)
	}
	if db != "" {
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		needle := []byte(" " + db + " ")
		for _, dir := range dirs {
			cmd, err := os.ReadFile(dir + "/cmdline")
			if err != nil || !bytes.HasPrefix(cmd, []byte("postgres: ")) || !bytes.Contains(cmd, needle) {
				continue
			}
			pid, _ := strconv.Atoi(filepath.Base(dir))
			s.Postgres += procCPU(pid)
		}
	}
	if f, err := os.Open("/proc/stat"); err == nil {
		sc := bufio.NewScanner(f)
		if sc.Scan() {
			fields := strings.Fields(sc.Text()) // cpu user nice system idle iowait irq softirq steal …
			var total, idle int64
			for i, x := range fields[1:] {
				n, _ := strconv.ParseInt(x, 10, 64)
				if i >= 8 { // guest time is already counted in user
					break
				}
				total += n
				if i == 3 || i == 4 {
					idle += n
				}
			}
			s.Total = ticks(total)
			s.Busy = ticks(total - idle)
		}
		f.Close()
	}
	return s
}

func ticks(n int64) time.Duration { return time.Duration(n) * time.Second / clockTick }

// procCPU is utime+stime of a process from /proc/PID/stat, 0 when it is gone.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name may hold spaces; fields resume after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ticks(ut + st)
}

// CPUUse is the CPU used between two samples, in seconds.
type CPUUse struct {
	WallSeconds     float64 `json:"wall_s"`
	SelfSeconds     float64 `json:"paperpipe_cpu_s"`
	FakeSeconds     float64 `json:"fake_api_cpu_s"`
	PostgresSeconds float64 `json:"postgres_cpu_s"`
	// MachineBusy is the machine's busy CPU time over the interval; OtherSeconds what none of
	// the three accounts for (other processes on a shared machine, kernel work, PostgreSQL's
	// background processes).
	MachineBusySeconds float64 `json:"machine_busy_cpu_s"`
	OtherSeconds       float64 `json:"other_cpu_s"`
	// Utilisation is MachineBusy over wall time times cores (1 = every core busy).
	Utilisation float64 `json:"machine_utilisation"`
}

// Since returns the CPU used from a to b.
func (b CPUSample) Since(a CPUSample) CPUUse {
	u := CPUUse{
		WallSeconds:        round3(b.At.Sub(a.At).Seconds()),
		SelfSeconds:        round3((b.Self - a.Self).Seconds()),
		FakeSeconds:        round3((b.Fake - a.Fake).Seconds()),
		PostgresSeconds:    round3((b.Postgres - a.Postgres).Seconds()),
		MachineBusySeconds: round3((b.Busy - a.Busy).Seconds()),
	}
	u.OtherSeconds = round3(max(0, u.MachineBusySeconds-u.SelfSeconds-u.FakeSeconds-u.PostgresSeconds))
	if t := (b.Total - a.Total).Seconds(); t > 0 {
		u.Utilisation = round3(u.MachineBusySeconds / t)
	}
	return u
}
