package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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

// pgProc is a PostgreSQL server process: its CPU so far, and, for a backend serving a TCP
// client, the client's port (0: one of the server's own processes, which work for every client:
// the postmaster, the WAL writer, the checkpointer, autovacuum …; -1: a backend of a client on a
// Unix socket).
type pgProc struct {
	cpu  time.Duration
	port int
}

// clientPort matches the client of a backend in its process title: "postgres: 15/main: user db
// 127.0.0.1(38610) INSERT".
var clientPort = regexp.MustCompile(`\((\d+)\)`)

// postgresProcs reads every process named postgres on this machine.
func postgresProcs() map[int]pgProc {
	out := map[int]pgProc{}
	for pid, cpu := range commCPU("postgres") {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		if err != nil {
			continue
		}
		out[pid] = pgProc{cpu: cpu, port: backendPort(b)}
	}
	return out
}

// backendPort reads a postgres process's title (its cmdline) for pgProc.port.
func backendPort(title []byte) int {
	if m := clientPort.FindSubmatch(title); m != nil {
		port, _ := strconv.Atoi(string(m[1]))
		return port
	}
	if bytes.Contains(title, []byte("[local]")) {
		return -1
	}
	return 0
}

// pgCPUSince is the CPU the backends of ours (those whose client port is one of ports) and the
// server's own, shared, processes used since the reading before; other clients' backends, such as other
// programs' on a shared server, are left out. A process that started in between counts whole,
// one that ended in between is lost (its time is not in /proc any more), which errs on the side
// of less.
func pgCPUSince(before, after map[int]pgProc, ports map[int]bool) (backends, shared time.Duration) {
	for pid, p := range after {
		switch d := max(p.cpu-before[pid].cpu, 0); {
		case p.port == 0:
			shared += d
		case ports[p.port]:
			backends += d
		}
	}
	return backends, shared
}

// socketPorts is the local ports of the TCP sockets the processes pids hold open to remote port
// remote (0: any): the inodes of their socket descriptors (/proc/<pid>/fd), looked up in this
// network namespace's /proc/net/tcp and tcp6.
func socketPorts(pids []int, remote uint16) map[int]bool {
	inodes := map[string]bool{}
	for _, pid := range pids {
		dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			link, err := os.Readlink(filepath.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			if inode, ok := strings.CutPrefix(link, "socket:["); ok {
				inodes[strings.TrimSuffix(inode, "]")] = true
			}
		}
	}
	ports := map[int]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			// "sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …"
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			if remote != 0 && hexPort(f[2]) != int(remote) {
				continue
			}
			if port := hexPort(f[1]); port > 0 {
				ports[port] = true
			}
		}
	}
	return ports
}

// cpuMeter reads, at the start and the end of a run, the CPU of what does the work: this process
// (the bench: publishers, receiver, and the nodes when they run here), the node processes when
// they run apart, and the PostgreSQL server processes on this machine when the run uses
// PostgreSQL.
type cpuMeter struct {
	nodePIDs []int
	db       bool
	dbPort   uint16 // the port the nodes reach PostgreSQL at

	self     time.Duration
	nodes    []time.Duration
	postgres map[int]pgProc
}

// cpuUse is what a cpuMeter measured between start and stop.
type cpuUse struct {
	Self, Nodes, DB time.Duration
	// DB is DBBackends, the backends serving the nodes, and DBShared, the server's own processes.
	DBBackends, DBShared time.Duration
	NodesMeasured        bool // the nodes ran apart and /proc had their figures
	db                   bool // the run used PostgreSQL
	DBMeasured           bool // the run used PostgreSQL and its processes are visible in /proc here
}

func (m *cpuMeter) start() {
	m.self = selfCPU()
	m.nodes = m.nodes[:0]
	for _, pid := range m.nodePIDs {
		c, _ := procCPU(pid)
		m.nodes = append(m.nodes, c)
	}
	if m.db {
		m.postgres = postgresProcs()
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
		// The backends that served the nodes are those whose clients are the nodes' sockets.
		owners := m.nodePIDs
		if len(owners) == 0 {
			owners = []int{os.Getpid()}
		}
		after := postgresProcs()
		u.DBBackends, u.DBShared = pgCPUSince(m.postgres, after, socketPorts(owners, m.dbPort))
		u.DB, u.DBMeasured = u.DBBackends+u.DBShared, len(after) > 0
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

// hexPort reads the port of an address of /proc/net/tcp ("0100007F:1F90"); 0 if malformed.
func hexPort(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	port, err := strconv.ParseUint(addr[i+1:], 16, 16)
	if err != nil {
		return 0
	}
	return int(port)
}
