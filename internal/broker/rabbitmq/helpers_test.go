package rabbitmq

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
)

// broker is the shared RabbitMQ of HERALD_TEST_AMQP_URL, or a private node.
type broker struct {
	url            string // with credentials, for the test's own client
	addr           string // host:port
	user, password string
}

func sharedBroker(t testing.TB) broker {
	t.Helper()
	raw := os.Getenv("HERALD_TEST_AMQP_URL")
	if raw == "" {
		t.Skip("HERALD_TEST_AMQP_URL not set")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("HERALD_TEST_AMQP_URL: %v", err)
	}
	pw, _ := u.User.Password()
	port := u.Port()
	if port == "" {
		port = "5672"
	}
	return broker{url: raw, addr: net.JoinHostPort(u.Hostname(), port), user: u.User.Username(), password: pw}
}

// settings are an endpoint's settings for this broker.
func (b broker) settings(t testing.TB, exchange, key string) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(map[string]any{
		"url": "amqp://" + b.addr + "/", "username": b.user, "password": b.password,
		"exchange": exchange, "routing_key": key,
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// client is the test's own connection (the consumer's side), closed at cleanup.
func (b broker) client(t testing.TB) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(b.url)
	if err != nil {
		t.Fatalf("test client: dial %s: %v", b.addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("test client: channel: %v", err)
	}
	return ch
}

// queue declares a fresh queue, deleted at cleanup.
func queue(t testing.TB, b broker, durable bool) string {
	t.Helper()
	ch := b.client(t)
	q, err := ch.QueueDeclare(brokertest.UniqueName("herald-test-q"), durable, false, false, false, nil)
	if err != nil {
		t.Fatalf("declare queue: %v", err)
	}
	t.Cleanup(func() {
		if c, err := amqp.Dial(b.url); err == nil {
			if ch, err := c.Channel(); err == nil {
				_, _ = ch.QueueDelete(q.Name, false, false, false)
			}
			_ = c.Close()
		}
	})
	return q.Name
}

func newType(t testing.TB, env destination.Env) *Type {
	t.Helper()
	if env.Dial == nil {
		d := brokertest.NewDialer()
		env.Dial, env.InternalDial = d.Dial, d.Dial
	}
	typ := New(env)
	t.Cleanup(func() { _ = typ.Close() })
	return typ
}

func open(t testing.TB, typ *Type, raw json.RawMessage, internal bool) *Sender {
	t.Helper()
	norm, errs := typ.Check(raw)
	if len(errs) > 0 {
		t.Fatalf("Check: %v", errs)
	}
	s, err := typ.Open(destination.Target{EndpointID: "ep_test", TenantID: "tn_test", Settings: norm, Internal: internal})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s.(*Sender)
}

// get polls a queue until a message arrives or the deadline passes.
func get(t testing.TB, ch *amqp.Channel, q string) amqp.Delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		d, ok, err := ch.Get(q, true)
		if err != nil {
			t.Fatalf("get from %s: %v", q, err)
		}
		if ok {
			return d
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no message in queue %s within 20s", q)
	return amqp.Delivery{}
}

// verify checks a delivery as a consumer would: Standard Webhooks signature over the body with
// the headers the message carries.
func verify(t testing.TB, d amqp.Delivery) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(brokertest.Secret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	for k, v := range d.Headers {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("header %s is %T, want string", k, v)
		}
		h.Set(k, s)
	}
	if err := wh.Verify(d.Body, h); err != nil {
		t.Fatalf("consumer's signature check: %v (headers %v)", err, d.Headers)
	}
}

func sendOK(t testing.TB, s destination.Sender, m *destination.Message) destination.Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o := s.Send(ctx, m)
	if o.Class != destination.Success {
		t.Fatalf("Send: %+v", o)
	}
	return o
}

// privateNode is a RabbitMQ node of the test's own, on free ports, that the test stops and
// starts (the shared broker is never touched).
type privateNode struct {
	t                 *testing.T
	name, dir, config string
	port              int
	distPort          int
	mu                sync.Mutex
	cmd               *exec.Cmd
	exited            chan struct{}
}

// startPrivateNode starts rabbitmq-server with its own node name, ports, data and log
// directories and a max_message_size of maxMessage bytes.
func startPrivateNode(t *testing.T, maxMessage int) *privateNode {
	t.Helper()
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		t.Fatalf("this test runs a private RabbitMQ node and needs rabbitmq-server in PATH: %v", err)
	}
	dir, err := os.MkdirTemp("", "herald-rabbitmq-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	n := &privateNode{t: t, name: brokertest.UniqueName("herald-test") + "@localhost", dir: dir, port: brokertest.FreePort(t), distPort: brokertest.FreePort(t)}
	for _, sub := range []string{"mnesia", "log", "plugins-expand"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n.config = filepath.Join(dir, "rabbitmq.conf")
	conf := fmt.Sprintf("listeners.tcp.local = 127.0.0.1:%d\nmax_message_size = %d\n", n.port, maxMessage)
	if err := os.WriteFile(n.config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "enabled_plugins"), []byte("[].\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Run as root, rabbitmq-server switches to the rabbitmq user: give it the directory.
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("rabbitmq"); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			_ = os.Chmod(dir, 0o755)
			_ = filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
				if err == nil {
					err = os.Chown(p, uid, gid)
				}
				return err
			})
		}
	}
	t.Cleanup(n.stop)
	n.start()
	return n
}

func (n *privateNode) brokerFor() broker {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port))
	return broker{url: "amqp://guest:guest@" + addr + "/", addr: addr, user: "guest", password: "guest"}
}

func (n *privateNode) env() []string {
	return append(os.Environ(),
		"RABBITMQ_NODENAME="+n.name,
		"RABBITMQ_NODE_PORT="+strconv.Itoa(n.port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(n.distPort),
		"RABBITMQ_CONFIG_FILE="+n.config,
		"RABBITMQ_MNESIA_BASE="+filepath.Join(n.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(n.dir, "log"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(n.dir, "enabled_plugins"),
		"RABBITMQ_PLUGINS_EXPAND_DIR="+filepath.Join(n.dir, "plugins-expand"),
	)
}

// start starts the node and waits until it accepts an AMQP connection.
func (n *privateNode) start() {
	t := n.t
	t.Helper()
	cmd := exec.Command("rabbitmq-server")
	cmd.Env = n.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := os.Create(filepath.Join(n.dir, "server.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rabbitmq-server: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = out.Close(); close(exited) }()
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()

	url := n.brokerFor().url
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(n.dir, "server.out"))
			t.Fatalf("rabbitmq-server exited while starting:\n%s", log)
		default:
		}
		if c, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)}); err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(n.dir, "server.out"))
	t.Fatalf("private RabbitMQ node did not accept connections within 90s:\n%s", log)
}

// stop stops the node (rabbitmqctl stop, then SIGKILL to its process group if it lingers) and
// waits until it has exited.
func (n *privateNode) stop() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	ctl := exec.Command("rabbitmqctl", "-n", n.name, "stop")
	ctl.Env = n.env()
	_ = ctl.Run()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	// The node's own children (epmd is shared and stays) go with it; wait for the port to close.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)), time.Second)
		if err != nil {
			return
		}
		_ = c.Close()
		time.Sleep(100 * time.Millisecond)
	}
}
