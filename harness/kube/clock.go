package kube

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/deadline"
)

// Clock relates a node's clocks to the harness's, so that what the node
// stamps (journal lines, systemd's monotonic timestamps) can be placed on
// the harness's timeline. A guest's wall clock comes from the emulated RTC
// at boot and may be off by a second or more; its monotonic clock counts
// from its boot. Both are read at one moment, taken as the middle of the
// round trip.
type Clock struct {
	// At is the harness's time of the reading.
	At time.Time
	// Uptime is the node's monotonic clock then (CLOCK_BOOTTIME, as
	// /proc/uptime).
	Uptime time.Duration
	// Wall is the node's wall clock then.
	Wall time.Time
}

// ReadClock reads the node's clocks.
func ReadClock(ctx context.Context, n harness.Node) (Clock, error) {
	var res harness.ExecResult
	var before, after time.Time
	err := deadline.Run(ctx, "reading "+n.Name()+"'s clock", deadline.ShellStep, func(ctx context.Context) error {
		var err error
		before = time.Now()
		res, err = n.Exec(ctx, "sh", "-c", "cat /proc/uptime; date +%s.%N")
		after = time.Now()
		return err
	})
	if err != nil {
		return Clock{}, fmt.Errorf("read %s's clock: %w", n.Name(), err)
	}
	c, err := ParseClock(string(res.Stdout))
	if err != nil {
		return Clock{}, fmt.Errorf("read %s's clock: %w", n.Name(), err)
	}
	c.At = before.Add(after.Sub(before) / 2)
	return c, nil
}

// ParseClock reads `cat /proc/uptime; date +%s.%N`.
func ParseClock(out string) (Clock, error) {
	lines := strings.Fields(out)
	if len(lines) != 3 {
		return Clock{}, fmt.Errorf("want uptime, idle time and date, got %q", out)
	}
	up, err := strconv.ParseFloat(lines[0], 64)
	if err != nil {
		return Clock{}, fmt.Errorf("uptime %q: %w", lines[0], err)
	}
	sec, frac, _ := strings.Cut(lines[2], ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return Clock{}, fmt.Errorf("date %q: %w", lines[2], err)
	}
	var ns int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return Clock{}, fmt.Errorf("date %q: %w", lines[2], err)
		}
	}
	return Clock{Uptime: time.Duration(up * float64(time.Second)), Wall: time.Unix(s, ns).UTC()}, nil
}

// FromMonotonic places a node's monotonic timestamp (µs since boot, as
// systemd's *TimestampMonotonic) on the harness's clock.
func (c Clock) FromMonotonic(usec int64) time.Time {
	return c.At.Add(time.Duration(usec)*time.Microsecond - c.Uptime)
}

// FromWall places a time of the node's wall clock on the harness's.
func (c Clock) FromWall(t time.Time) time.Time {
	return c.At.Add(t.Sub(c.Wall))
}

// JournalTime reads a short-precise journal timestamp ("Dec 07
// 06:04:57.579659", no year, the node's local time: UTC on our nodes) as
// a time of the node's wall clock; the year is the one of the clock's
// reading (or the one before, for a December line read in January).
func (c Clock) JournalTime(stamp string) (time.Time, error) {
	t, err := time.Parse(journalStamp, stamp)
	if err != nil {
		return time.Time{}, fmt.Errorf("journal time %q: %w", stamp, err)
	}
	year := c.Wall.Year()
	if t.Month() > c.Wall.Month() {
		year--
	}
	return t.AddDate(year-t.Year(), 0, 0), nil
}
