package ops

import (
	"sync"
	"time"
)

// Defaults of the source.verification_failing rule.
const (
	// DefaultSourceRejections is how many rejected requests in a row make a source failing.
	DefaultSourceRejections = 10
	// DefaultSourceWindow is how close together they must come: a streak whose first rejection
	// is older than this starts again at the next one, so that a stray forgery now and then is
	// never reported.
	DefaultSourceWindow = 10 * time.Minute
	// maxWatched bounds the sources followed at once. Only requests to existing sources reach
	// the verification step, so this is only reached with that many sources failing together.
	maxWatched = 10000
)

// sourceStreak is a source's rejections since its last verified request.
type sourceStreak struct {
	first    time.Time
	count    int
	reported bool
}

// sourceWatch follows failing verifications per source, in this process.
type sourceWatch struct {
	mu      sync.Mutex
	streaks map[string]*sourceStreak
}

// SourceRejected records a request of the source that failed verification. When the source
// has had Config.SourceRejections of them within Config.SourceWindow and no verified request
// since the first, it publishes source.verification_failing, once: the next is published only
// after a verified request has ended the streak.
func (p *Publisher) SourceRejected(tenant, source, reason string) {
	if p == nil {
		return
	}
	now := p.cfg.Now().UTC()
	p.sources.mu.Lock()
	st := p.sources.streaks[source]
	if st == nil || (!st.reported && now.Sub(st.first) > p.cfg.SourceWindow) {
		if st == nil && len(p.sources.streaks) >= maxWatched {
			p.sources.forgetOld(now, p.cfg.SourceWindow)
			if len(p.sources.streaks) >= maxWatched {
				p.sources.mu.Unlock()
				return
			}
		}
		st = &sourceStreak{first: now}
		p.sources.streaks[source] = st
	}
	st.count++
	report := !st.reported && st.count >= p.cfg.SourceRejections
	if report {
		st.reported = true
	}
	first, count := st.first, st.count
	p.sources.mu.Unlock()
	if !report {
		return
	}
	p.log.Warn("source failing verification", "tenant", tenant, "source", source, "rejections", count, "since", first, "last_reason", reason)
	p.SourceVerificationFailing(VerificationData{Tenant: tenant, Source: source, Rejections: count,
		WindowSeconds: int64(p.cfg.SourceWindow / time.Second), FirstRejectedAt: first, LastReason: reason})
}

// SourceVerified ends the source's streak of rejections, if it has one.
func (p *Publisher) SourceVerified(source string) {
	if p == nil {
		return
	}
	p.sources.mu.Lock()
	delete(p.sources.streaks, source)
	p.sources.mu.Unlock()
}

// forgetOld drops the streaks that can no longer be reported: not yet reported, and begun
// longer than window ago (the next rejection would start them again anyway).
func (w *sourceWatch) forgetOld(now time.Time, window time.Duration) {
	for id, st := range w.streaks {
		if !st.reported && now.Sub(st.first) > window {
			delete(w.streaks, id)
		}
	}
}
