package node

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// The proxy applies the cluster-wide rate limits (the replicated windowed
// counters of /v1/limits) by naming convention:
//
//	model:NAME   every request for model NAME, whichever node it enters
//	api-key      each API key (Config.ProxyKeyHeader) on its own
//
// A request over a limit is answered 429 with Retry-After (the seconds
// until the window ends). Keys are counted under a digest, so that no
// client's key is replicated.
const (
	modelLimitPrefix = "model:"
	keyLimitName     = "api-key"
)

// admit takes one request from the limits that apply to it; on refusal it
// returns how long until the refusing window ends.
func (p *proxy) admit(model, key string, now time.Time) (bool, time.Duration) {
	st := p.n.st
	if key != "" {
		if l, ok := st.limit(keyLimitName); ok {
			if ok, _, reset, _ := st.take(keyCounter(key), 1, l, p.n.share(), now); !ok {
				return false, reset.Sub(now)
			}
		}
	}
	if l, ok := st.limit(modelLimitPrefix + model); ok {
		if ok, _, reset, _ := st.take(modelLimitPrefix+model, 1, l, p.n.share(), now); !ok {
			return false, reset.Sub(now)
		}
	}
	return true, 0
}

// keyCounter names the counter of an API key: a digest, never the key.
func keyCounter(key string) string {
	sum := sha256.Sum256([]byte(key))
	return keyLimitName + ":" + hex.EncodeToString(sum[:16])
}
