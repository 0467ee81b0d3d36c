package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat: USER_HZ, which Linux fixes at 100
// on every architecture Go supports, whatever the kernel's own tick.
const clockTick = 10 * time.Millisecond

// procCPU reads the CPU time (user and system) a process has used so far from /proc/<pid>/stat,
// to the clock tick (10 ms). It fails where there is no /proc (not Linux) or the process is gone.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, fmt.Errorf("cpu of process %d: %w", pid, err)
	}
	_, cpu, err := parseStat(b)
	if err != nil {
		return 0, fmt.Errorf("cpu of process %d: %w", pid, err)
	}
	return cpu, nil
}

// parseStat reads the command name and utime+stime from the contents of /proc/<pid>/stat: "pid
// (comm) state ppid … utime stime …", where comm may itself hold spaces and parentheses, so the
// fields are counted from the last ')'.
func parseStat(b []byte) (comm string, cpu time.Duration, err error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", 0, fmt.Errorf("malformed stat %.60q", b)
	}
	fields := bytes.Fields(b[end+1:])
	// fields[0] is the state (field 3 of stat(5)); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return "", 0, fmt.Errorf("malformed stat %.60q", b)
	}
	utime, err1 := strconv.ParseInt(string(fields[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(fields[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, fmt.Errorf("malformed stat %.60q", b)
	}
	return string(b[open+1 : end]), time.Duration(utime+stime) * clockTick, nil
}

// commCPU sums the CPU time used so far by every process on this machine named comm (such as
// "postgres": the server and its backends), by pid, so that a later reading can be set against
// it. Processes of other users are included; /proc shows their stat to anyone.
func commCPU(comm string) map[int]time.Duration {
	out := map[int]time.Duration{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		if c, cpu, err := parseStat(b); err == nil && c == comm {
			out[pid] = cpu
		}
	}
	return out
}

// cpuSince is the CPU used by the processes of after since the reading before: a process that
// started in between counts whole, one that ended in between is lost (its time is not in /proc
// any more), which only errs on the side of less.
func cpuSince(before, after map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, cpu := range after {
		d += max(cpu-before[pid], 0)
	}
	return d
}

// cpuMeter reads, at the start and the end of a run, the CPU of what does the work: this process
// (the bench: publishers, receiver, and the nodes when they run here), the node processes when
// they run apart, and the PostgreSQL server processes on this machine when the run uses
// PostgreSQL.
type cpuMeter struct {
	nodePIDs []int
	db       bool

	self     time.Duration
	nodes    []time.Duration
	postgres map[int]time.Duration
}

// cpuUse is what a cpuMeter measured between start and stop.
type cpuUse struct {
	Self, Nodes, DB time.Duration
	NodesMeasured   bool // the nodes ran apart and /proc had their figures
	db              bool // the run used PostgreSQL
	DBMeasured      bool // the run used PostgreSQL and its processes are visible in /proc here
}

func (m *cpuMeter) start() {
	m.self = selfCPU()
	m.nodes = m.nodes[:0]
	for _, pid := range m.nodePIDs {
		c, _ := procCPU(pid)
		m.nodes = append(m.nodes, c)
	}
	if m.db {
		m.postgres = commCPU("postgres")
	}
}

func (m *cpuMeter) stop() cpuUse {
	u := cpuUse{Self: selfCPU() - m.self, NodesMeasured: len(m.nodePIDs) > 0, db: m.db}
	for i, pid := range m.nodePIDs {
		c, err := procCPU(pid)
		if err != nil {
			u.NodesMeasured = false
			continue
		}
		u.Nodes += c - m.nodes[i]
	}
	if m.db {
		after := commCPU("postgres")
		u.DB, u.DBMeasured = cpuSince(m.postgres, after), len(after) > 0
	}
	return u
}

// perDelivery is the CPU of what did the work per delivery, in µs, and what that was.
func (u cpuUse) perDelivery(deliveries int) (float64, string) {
	work, scope := u.Self, "bench process"
	if u.NodesMeasured {
		work, scope = u.Nodes, "node"
	}
	switch {
	case u.DBMeasured:
		work += u.DB
		scope += " + postgres"
	case u.db:
		scope += " (postgres not seen: on another machine?)"
	}
	if deliveries <= 0 {
		return 0, scope
	}
	return float64(work.Microseconds()) / float64(deliveries), scope
}
