package redisstream

import (
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

// classify turns a failed XADD (or the connection before it) into the attempt's class, kind and
// a sentence for the tenant. Redis's own error replies are recognised by their code (the first
// word); what is left is a connection problem, classified as the webhook dialer's are.
func classify(err error, address, stream string) (destination.Class, string, string) {
	var limit *errConnLimit
	switch {
	case errors.As(err, &limit):
		return destination.Retryable, destination.KindBrokerBusy, limit.Error() + "; the message will be retried"
	case errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return destination.Retryable, destination.KindBrokerBusy,
			fmt.Sprintf("every connection to Redis at %s is busy (the node's connection limit); the message will be retried", address)
	case errors.Is(err, errTypeClosed), errors.Is(err, redis.ErrClosed):
		return destination.Retryable, destination.KindCanceled, errTypeClosed.Error()
	}

	var rerr redis.Error
	if errors.As(err, &rerr) {
		return classifyReply(rerr.Error(), address, stream)
	}
	// go-redis reports some replies of the connection's handshake (AUTH, SELECT) as plain errors
	// carrying the reply's text.
	if code, _, _ := strings.Cut(err.Error(), " "); isReplyCode(code) {
		return classifyReply(err.Error(), address, stream)
	}

	class, kind := httpsend.ClassifyDialError(err)
	msg := fmt.Sprintf("redis at %s: %v", address, err)
	switch kind {
	case destination.KindBlocked:
		msg = fmt.Sprintf("redis address %s: %v", address, err)
	case destination.KindTimeout:
		msg = fmt.Sprintf("redis at %s did not answer in time", address)
	case destination.KindCanceled:
		msg = "the attempt was canceled before redis at " + address + " answered"
	case destination.KindInvalidResponse:
		// Not a connection failure the dialer knows: Redis (or something at its address) said
		// something we do not understand.
		kind = destination.KindBrokerError
	}
	return class, kind, msg
}

func isReplyCode(code string) bool {
	switch code {
	case "ERR", "WRONGTYPE", "NOAUTH", "WRONGPASS", "NOPERM", "OOM", "LOADING", "BUSY", "READONLY",
		"MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "MOVED", "ASK", "NOSCRIPT", "EXECABORT", "NOREPLICAS":
		return true
	}
	return false
}

// classifyReply classifies an error reply of the server (e.g. "WRONGTYPE Operation against a key
// holding the wrong kind of value"). The reply's text never holds the password.
func classifyReply(reply, address, stream string) (destination.Class, string, string) {
	code, text, _ := strings.Cut(reply, " ")
	said := fmt.Sprintf("redis at %s said: %s", address, reply)
	switch code {
	case "WRONGTYPE":
		return destination.Permanent, destination.KindNoRoute,
			fmt.Sprintf("the key %q on redis at %s exists and is not a stream (WRONGTYPE): delete or rename it, or set another stream", stream, address)
	case "NOAUTH", "WRONGPASS":
		return destination.Permanent, destination.KindDenied,
			fmt.Sprintf("redis at %s refused the credentials (%s): check the username and password settings", address, code)
	case "NOPERM":
		return destination.Permanent, destination.KindDenied,
			fmt.Sprintf("redis at %s denied the user this operation: %s", address, reply)
	case "OOM":
		return destination.Retryable, destination.KindBrokerBusy,
			fmt.Sprintf("redis at %s is out of memory (maxmemory reached); the message will be retried", address)
	case "LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN":
		return destination.Retryable, destination.KindBrokerBusy, said
	case "READONLY":
		// A replica: usually a failover in progress, which the next attempt gets past.
		return destination.Retryable, destination.KindBrokerError, said
	case "MOVED", "ASK":
		return destination.Permanent, destination.KindBrokerError,
			fmt.Sprintf("redis at %s is a cluster node and the stream lives on another node (%s); Redis Cluster is not supported: set the address of the node that holds the stream", address, reply)
	case "ERR":
		lt := strings.ToLower(text)
		switch {
		case strings.Contains(lt, "db index is out of range"), strings.Contains(lt, "invalid db index"):
			return destination.Permanent, destination.KindNoRoute,
				fmt.Sprintf("redis at %s has no such database (%s): check the db setting", address, reply)
		case strings.Contains(lt, "invalid bulk length"), strings.Contains(lt, "string exceeds maximum allowed size"),
			strings.Contains(lt, "too big"), strings.Contains(lt, "too large"):
			return destination.Permanent, destination.KindTooLarge,
				fmt.Sprintf("redis at %s refused the message for its size: %s", address, reply)
		case strings.Contains(lt, "unknown command"):
			return destination.Permanent, destination.KindBrokerError,
				fmt.Sprintf("redis at %s does not know a command Herald uses (streams need Redis 5.0 or later, a redis source 6.2): %s", address, reply)
		case strings.Contains(lt, "auth"), strings.Contains(lt, "password"):
			return destination.Permanent, destination.KindDenied,
				fmt.Sprintf("redis at %s refused the credentials: %s", address, reply)
		case strings.Contains(lt, "max number of clients"):
			return destination.Retryable, destination.KindBrokerBusy, said
		}
	}
	return destination.Retryable, destination.KindBrokerError, said
}
