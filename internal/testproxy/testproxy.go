// Package testproxy starts real outbound proxies on 127.0.0.1 for tests of egress through a
// proxy: Debian's tinyproxy (an HTTP CONNECT proxy, binary from HERALD_TEST_TINYPROXY), a TLS
// front for it (an https:// proxy), and a SOCKS5 server from github.com/armon/go-socks5. Each
// records what it was asked to reach, so tests can assert the traffic went through it.
package testproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	socks5 "github.com/armon/go-socks5"
)

// TinyproxyEnv names the variable holding tinyproxy's path; tests skip when it is unset.
const TinyproxyEnv = "HERALD_TEST_TINYPROXY"

// Tinyproxy is a running tinyproxy.
type Tinyproxy struct {
	Addr    string // 127.0.0.1:port
	logFile string
}

// TinyproxyOptions configure a tinyproxy.
type TinyproxyOptions struct {
	// User and Password, when set, make it require Basic proxy authentication.
	User, Password string
	// ConnectPorts, when set, are the only ports CONNECT may reach.
	ConnectPorts []int
}

// StartTinyproxy starts tinyproxy on a free 127.0.0.1 port, or skips the test when
// HERALD_TEST_TINYPROXY is unset. It is stopped at cleanup.
func StartTinyproxy(t testing.TB, o TinyproxyOptions) *Tinyproxy {
	t.Helper()
	bin := os.Getenv(TinyproxyEnv)
	if bin == "" {
		t.Skip(TinyproxyEnv + " is unset (the path of Debian's tinyproxy)")
	}
	dir := t.TempDir()
	port := freePort(t)
	tp := &Tinyproxy{Addr: fmt.Sprintf("127.0.0.1:%d", port), logFile: filepath.Join(dir, "tinyproxy.log")}
	var conf strings.Builder
	fmt.Fprintf(&conf, "Port %d\nListen 127.0.0.1\nTimeout 30\nMaxClients 50\nAllow 127.0.0.1\nLogLevel Info\nLogFile %q\n", port, tp.logFile)
	if o.User != "" {
		fmt.Fprintf(&conf, "BasicAuth %s %s\n", o.User, o.Password)
	}
	for _, p := range o.ConnectPorts {
		fmt.Fprintf(&conf, "ConnectPort %d\n", p)
	}
	confFile := filepath.Join(dir, "tinyproxy.conf")
	if err := os.WriteFile(confFile, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-d", "-c", confFile)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tinyproxy: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", tp.Addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tinyproxy did not listen on %s: %v", tp.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return tp
}

var requestLine = regexp.MustCompile(`Request \(file descriptor \d+\): (.*)$`)

// Requests are the request lines tinyproxy logged ("CONNECT 127.0.0.1:4431 HTTP/1.1"), in order.
func (tp *Tinyproxy) Requests(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(tp.logFile)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if m := requestLine.FindStringSubmatch(sc.Text()); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// Log is tinyproxy's whole log, for failure messages.
func (tp *Tinyproxy) Log() string {
	b, _ := os.ReadFile(tp.logFile)
	return string(b)
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TLSFront serves TLS with cert on a 127.0.0.1 port and relays every connection to backend, so
// that a plain proxy becomes an https:// proxy. It returns its address.
func TLSFront(t testing.TB, cert tls.Certificate, backend string) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, b)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(b, c); b.Close() })
			wg.Go(func() { _, _ = io.Copy(c, b); c.Close() })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// SOCKS5 is a running SOCKS5 server.
type SOCKS5 struct {
	Addr string
	mu   sync.Mutex
	dest []string
}

// StartSOCKS5 starts a SOCKS5 server on 127.0.0.1 (github.com/armon/go-socks5); with user set
// it requires username/password authentication. It connects only to loopback addresses, so a
// test can never send traffic elsewhere through it.
func StartSOCKS5(t testing.TB, user, password string) *SOCKS5 {
	t.Helper()
	s := &SOCKS5{}
	conf := &socks5.Config{
		Logger: log.New(io.Discard, "", 0),
		Rules:  s,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return nil, fmt.Errorf("test SOCKS5 server: refusing non-loopback %s", addr)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	if user != "" {
		conf.Credentials = socks5.StaticCredentials{user: password}
	}
	srv, err := socks5.New(conf)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return s
}

// Allow records what the client asked to reach (an IP address or a name, as sent) and allows it.
func (s *SOCKS5) Allow(ctx context.Context, req *socks5.Request) (context.Context, bool) {
	d := req.DestAddr
	target := d.IP.String()
	if d.FQDN != "" {
		target = d.FQDN
	}
	s.mu.Lock()
	s.dest = append(s.dest, net.JoinHostPort(target, fmt.Sprint(d.Port)))
	s.mu.Unlock()
	return ctx, true
}

// Destinations are the destinations clients asked for, as "host:port", in order.
func (s *SOCKS5) Destinations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.dest...)
}
