package odds

import (
	"fmt"
	"math"
)

// z95 is the standard normal quantile for a two-sided 95% interval.
const z95 = 1.959963984540054

// Rate is a count of successes in trials with its 95% Wilson score
// interval: unlike the normal approximation it stays inside [0, 1] and
// says something useful at 0 of 20 (0% to 16%), which is where natural
// odds measured on a few dozen reboots live.
type Rate struct {
	Hits   int     `json:"hits"`
	Trials int     `json:"trials"`
	P      float64 `json:"p"`
	Lo     float64 `json:"lo95"`
	Hi     float64 `json:"hi95"`
}

// NewRate computes hits/trials and its 95% Wilson interval; no trials is
// [0, 1], knowing nothing.
func NewRate(hits, trials int) Rate {
	r := Rate{Hits: hits, Trials: trials, Lo: 0, Hi: 1}
	if trials <= 0 {
		return r
	}
	lo, hi := Wilson(hits, trials, z95)
	r.P, r.Lo, r.Hi = float64(hits)/float64(trials), lo, hi
	return r
}

// Wilson returns the Wilson score interval for k successes in n trials at
// normal quantile z.
func Wilson(k, n int, z float64) (lo, hi float64) {
	if n <= 0 {
		return 0, 1
	}
	p := float64(k) / float64(n)
	nf := float64(n)
	z2 := z * z
	denom := 1 + z2/nf
	center := (p + z2/(2*nf)) / denom
	half := z / denom * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	return math.Max(0, center-half), math.Min(1, center+half)
}

// String says it the way a person reads it: "2/20 = 10% (95% CI 3%–30%)".
func (r Rate) String() string {
	if r.Trials == 0 {
		return "no cycles"
	}
	return fmt.Sprintf("%d/%d = %s (95%% Wilson %s–%s)", r.Hits, r.Trials, pct(r.P), pct(r.Lo), pct(r.Hi))
}

func pct(f float64) string {
	v := f * 100
	if v != 0 && v < 10 {
		return fmt.Sprintf("%.1f%%", v)
	}
	return fmt.Sprintf("%.0f%%", v)
}
