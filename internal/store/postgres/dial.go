package postgres

import (
	"context"
	"net"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A database behind a network that drops packets silently (no reset, no refusal) would hold a
// query's connection for as long as the kernel retransmits, about 15 minutes, whatever the
// caller's deadline for the pool's other work. TCP connections to PostgreSQL therefore carry
// keepalives and a user timeout: unacknowledged data for longer than tcpUserTimeout (or a peer
// silent through its keepalives) breaks the connection, and the query fails with an error the
// store reports as unavailable.
const (
	tcpKeepAlive   = 5 * time.Second
	tcpUserTimeout = 10 * time.Second
	dialTimeout    = 5 * time.Second
)

// dial is the pool's dialer: TCP with keepalives and a user timeout (Linux), Unix sockets as they are.
func dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: tcpKeepAlive}
	if strings.HasPrefix(network, "tcp") {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(tcpUserTimeout.Milliseconds()))
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return d.DialContext(ctx, network, addr)
}
