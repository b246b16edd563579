package odds

import (
	"math"
	"testing"
)

// Reference values: Wilson score intervals at 95% (z = 1.96), as R's
// prop.test(x, n, correct = FALSE) and every table of them give.
func TestWilson(t *testing.T) {
	for _, c := range []struct {
		k, n   int
		lo, hi float64
	}{
		{0, 20, 0, 0.1611},
		{2, 20, 0.0279, 0.3010},
		{1, 10, 0.0179, 0.4042},
		{10, 10, 0.7225, 1},
		{5, 10, 0.2366, 0.7634},
		{0, 1, 0, 0.7935},
	} {
		lo, hi := Wilson(c.k, c.n, z95)
		if math.Abs(lo-c.lo) > 5e-4 || math.Abs(hi-c.hi) > 5e-4 {
			t.Errorf("Wilson(%d, %d) = [%.4f, %.4f], want [%.4f, %.4f]", c.k, c.n, lo, hi, c.lo, c.hi)
		}
	}
}

func TestRate(t *testing.T) {
	if r := NewRate(0, 0); r.Lo != 0 || r.Hi != 1 || r.String() != "no cycles" {
		t.Errorf("no trials: %+v %q", r, r.String())
	}
	if got := NewRate(2, 20).String(); got != "2/20 = 10% (95% Wilson 2.8%–30%)" {
		t.Errorf("got %q", got)
	}
}
