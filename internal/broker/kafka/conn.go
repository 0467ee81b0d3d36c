package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/heraldhq/herald/internal/destination"
)

// This file is the connection side shared by the destination (a pooled producer client) and
// the source (one consumer-group client per consumer): the client options every Kafka client
// of Herald starts from, the guarded dialer with optional TLS, SASL, and the watch of the last
// connection failure.

// connOpts are the options of every Kafka client Herald makes: the seed brokers, the client id,
// every connection through dial (the node's guarded dialer, wrapped by guardedDialer), SASL.
func connOpts(brokers []string, m sasl.Mechanism, dial func(ctx context.Context, network, host string) (net.Conn, error)) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("herald"),
		kgo.Dialer(dial),
	}
	if m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts
}

// mechanism is the SASL mechanism of the settings, nil for "none".
func mechanism(name, username, password string) sasl.Mechanism {
	switch name {
	case "plain":
		return plain.Auth{User: username, Pass: password}.AsMechanism()
	case "scram-sha-256":
		return scram.Auth{User: username, Pass: password}.AsSha256Mechanism()
	case "scram-sha-512":
		return scram.Auth{User: username, Pass: password}.AsSha512Mechanism()
	}
	return nil
}

// guardedDialer opens every connection of a client through dial (the node's guarded dialer:
// env.Dial, or env.InternalDial for an internal target), then TLS if useTLS, and records each
// failure in w.
func guardedDialer(dial destination.Dialer, useTLS bool, w *connWatch) func(ctx context.Context, network, host string) (net.Conn, error) {
	return func(ctx context.Context, network, host string) (net.Conn, error) {
		if dial == nil {
			err := errors.New("no dialer configured for kafka")
			w.fail(err)
			return nil, err
		}
		conn, err := dial(ctx, network, host)
		if err != nil {
			w.fail(err)
			return nil, err
		}
		if useTLS {
			name, _, _ := net.SplitHostPort(host)
			tc := tls.Client(conn, &tls.Config{ServerName: name, MinVersion: tls.VersionTLS12})
			if err := tc.HandshakeContext(ctx); err != nil {
				_ = conn.Close()
				err = fmt.Errorf("tls handshake with %s: %w", host, err)
				w.fail(err)
				return nil, err
			}
			conn = tc
		}
		return conn, nil
	}
}

// connWatch remembers a client's last failed connection (dial, TLS or SASL), cleared when a
// connection succeeds. It is a kgo.HookBrokerConnect.
type connWatch struct {
	last atomic.Pointer[connFailure]
}

type connFailure struct {
	err error
	at  time.Time
}

func (w *connWatch) fail(err error) { w.last.Store(&connFailure{err: err, at: time.Now()}) }

// recentConnFailure is the last connection failure, if no connection succeeded since and it is
// recent: the reason something that started at since could not reach the brokers.
func (w *connWatch) recentConnFailure(since time.Time) error {
	f := w.last.Load()
	if f == nil || f.at.Before(since.Add(-dialFailureWindow)) {
		return nil
	}
	return f.err
}

// OnBrokerConnect (kgo.HookBrokerConnect) records a connection that failed after the dial
// (SASL refused, for one) and clears the failure when a connection is made.
func (w *connWatch) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		w.fail(err)
		return
	}
	w.last.Store(nil)
}
