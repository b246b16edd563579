package odds

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// The plot a person reads at a glance: per cycle (x), the old sandboxes'
// PIDs (y) against how far the new boot's PID counter had got when their
// DELs ran. An old PID above the blue lines could not have been handed out
// yet (unless PIDs wrapped at pid_max, drawn when it is in view); one
// below them could, and whether a long-lived task kept it is the whole
// question: hits are the red triangles.

var (
	colFree  = color.RGBA{R: 130, G: 130, B: 130, A: 255}
	colPod   = color.RGBA{R: 150, G: 60, B: 180, A: 255}
	colNear  = color.RGBA{R: 230, G: 140, B: 0, A: 255}
	colHit   = color.RGBA{R: 210, G: 20, B: 20, A: 255}
	colLast  = color.RGBA{R: 30, G: 90, B: 200, A: 255}
	colFirst = color.RGBA{R: 120, G: 160, B: 230, A: 255}
	colMax   = color.RGBA{R: 120, G: 0, B: 120, A: 255}
)

// WritePlot draws the report's cycles into path; the format follows the
// extension (.svg, .png, .pdf).
func WritePlot(rep Report, path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("pidreuse odds on %s (pid_max %d): %s", rep.Node.Profile, rep.PIDMax, rep.Rate)
	p.X.Label.Text = "reboot cycle"
	p.Y.Label.Text = "PID"
	p.X.Tick.Marker = cycleTicks(len(rep.Cycles))
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())

	var free, near, pod, hit, first, last plotter.XYs
	yMax := 0.0
	for _, c := range rep.Cycles {
		x := float64(c.Index)
		for _, o := range c.Sandboxes {
			pt := plotter.XY{X: x, Y: float64(o.PID)}
			yMax = math.Max(yMax, pt.Y)
			switch {
			case o.Hit:
				hit = append(hit, pt)
			case o.Held && o.Holder != nil && o.Holder.HostNetns:
				near = append(near, pt)
			case o.Held:
				pod = append(pod, pt)
			default:
				free = append(free, pt)
			}
		}
		if c.NsLastPIDMax > 0 {
			first = append(first, plotter.XY{X: x, Y: float64(c.NsLastPIDMin)})
			last = append(last, plotter.XY{X: x, Y: float64(c.NsLastPIDMax)})
			yMax = math.Max(yMax, float64(c.NsLastPIDMax))
		}
	}
	if err := addLine(p, first, colFirst, true, "highest PID handed out at the cycle's first old-sandbox DEL (ns_last_pid)"); err != nil {
		return err
	}
	if err := addLine(p, last, colLast, false, "… at its last old-sandbox DEL"); err != nil {
		return err
	}
	if rep.PIDMax > 0 && float64(rep.PIDMax) < 3*yMax && len(rep.Cycles) > 0 {
		// pid_max is in view: PIDs may have wrapped, and the lines above
		// are then no bound.
		line := plotter.XYs{{X: 0.5, Y: float64(rep.PIDMax)}, {X: float64(len(rep.Cycles)) + 0.5, Y: float64(rep.PIDMax)}}
		if err := addLine(p, line, colMax, true, fmt.Sprintf("pid_max %d: PIDs wrap to 300 above it", rep.PIDMax)); err != nil {
			return err
		}
	}
	for _, s := range []struct {
		pts    plotter.XYs
		glyph  draw.GlyphDrawer
		col    color.Color
		radius vg.Length
		label  string
	}{
		{free, draw.RingGlyph{}, colFree, 3, "old sandbox PID, free when its DEL ran"},
		{pod, draw.SquareGlyph{}, colPod, 3.5, "held by a task in a pod's netns when its DEL ran"},
		{near, draw.BoxGlyph{}, colNear, 3.5, "near miss: a host-netns task held it when the DEL ran, but CRI-O's path was already set (empty)"},
		{hit, draw.TriangleGlyph{}, colHit, 6, "HIT: a host-netns task held it, DEL entered the host's netns"},
	} {
		if len(s.pts) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(s.pts)
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		sc.GlyphStyle = draw.GlyphStyle{Shape: s.glyph, Color: s.col, Radius: s.radius}
		p.Add(sc)
		p.Legend.Add(s.label, sc)
	}
	p.X.Min, p.X.Max = 0.5, float64(len(rep.Cycles))+0.5
	// Headroom above the data for the legend, drawn top left.
	p.Y.Min, p.Y.Max = 0, 1.45*math.Max(yMax, 1)
	if err := p.Save(10*vg.Inch, 6*vg.Inch, path); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}

func addLine(p *plot.Plot, pts plotter.XYs, col color.Color, dashed bool, label string) error {
	if len(pts) == 0 {
		return nil
	}
	l, s, err := plotter.NewLinePoints(pts)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	l.LineStyle.Color, l.LineStyle.Width = col, vg.Points(1.5)
	if dashed {
		l.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	s.GlyphStyle = draw.GlyphStyle{Shape: draw.CircleGlyph{}, Color: col, Radius: vg.Points(1.5)}
	p.Add(l, s)
	p.Legend.Add(label, l)
	return nil
}

// cycleTicks marks whole cycles (every one up to 25, then every fifth).
func cycleTicks(n int) plot.Ticker {
	return plot.TickerFunc(func(min, max float64) []plot.Tick {
		step := 1
		if n > 25 {
			step = 5
		}
		var ticks []plot.Tick
		for i := 1; i <= n; i++ {
			t := plot.Tick{Value: float64(i)}
			if i == 1 || i%step == 0 {
				t.Label = fmt.Sprint(i)
			}
			ticks = append(ticks, t)
		}
		return ticks
	})
}
