package kube

import (
	"testing"
	"time"
)

func TestClockPlacesNodeTimes(t *testing.T) {
	c, err := ParseClock("41.25 70.10\n1796623500.750000000\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Uptime != 41250*time.Millisecond {
		t.Fatalf("uptime %s", c.Uptime)
	}
	// The node's wall clock runs 2 s ahead of the harness's.
	c.At = c.Wall.Add(-2 * time.Second)
	if got := c.FromMonotonic(40_250_000); !got.Equal(c.At.Add(-time.Second)) {
		t.Fatalf("monotonic 40.25 s at %s, want a second before the reading (%s)", got, c.At)
	}
	stamp := c.Wall.Add(-3 * time.Second).Format("Jan 02 15:04:05.000000")
	jt, err := c.JournalTime(stamp)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.FromWall(jt); !got.Equal(c.At.Add(-3 * time.Second)) {
		t.Fatalf("journal line %q at %s, want %s", stamp, got, c.At.Add(-3*time.Second))
	}
	for _, bad := range []string{"", "41.25 70.10", "x 1 2", "1 2 y.5"} {
		if _, err := ParseClock(bad); err == nil {
			t.Errorf("ParseClock(%q): no error", bad)
		}
	}
	if _, err := c.JournalTime("yesterday"); err == nil {
		t.Error("JournalTime of a bad stamp: no error")
	}
}

func TestJournalTimeOfDecemberReadInJanuary(t *testing.T) {
	c := Clock{Wall: time.Date(2027, 1, 1, 0, 0, 5, 0, time.UTC)}
	jt, err := c.JournalTime("Dec 31 23:59:58.000000")
	if err != nil {
		t.Fatal(err)
	}
	if jt.Year() != 2026 {
		t.Fatalf("year %d", jt.Year())
	}
}
