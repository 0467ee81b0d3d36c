package node_test

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestNode_SlowHeadersAreCutOff plays a slowloris client: it sends half a request line and then
// nothing. The server must close the connection once its header timeout (5 s) passes, rather than
// hold it for as long as the client likes.
func TestNode_SlowHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	conn, err := net.Dial("tcp", h.node.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := conn.SetReadDeadline(start.Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(conn) // returns when the server closes the connection
	elapsed := time.Since(start)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection with unfinished headers still open after %v", elapsed)
	}
	if elapsed < 4*time.Second || elapsed > 12*time.Second {
		t.Errorf("server closed the connection after %v, want about 5 s (ReadHeaderTimeout)", elapsed)
	}
}
