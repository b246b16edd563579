// Package report writes what a run found, for people and for CI: a JSON
// file per scenario, a Markdown summary with the timeline of each (also
// appended to $GITHUB_STEP_SUMMARY when set), and JUnit XML.
package report

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pidreuse/pidreuse/harness/runner"
)

// Run describes the run the results came from.
type Run struct {
	ID      string
	Tier    string
	Started time.Time
	// Inputs name what the run judged besides the image: the binaries a
	// user laid over it, with their hashes (what a bisect step tested).
	Inputs []string
	// Artifacts are the dirs where a failed run kept its nodes' logs.
	Artifacts []string
}

// CheckDir makes sure a report can be written under dir, without creating
// anything: dir, or the nearest of its parents that exists, must be a
// directory this process can write, and nothing on the way may be a file.
// Call it before a run, so an unwritable report dir stops the run before
// any node starts, and a run refused later leaves no dir behind.
func CheckDir(dir string) error {
	const fix = "(pass a writable --report-dir or set PIDREUSE_REPORT_DIR)"
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("report dir %s: %w %s", dir, err, fix)
	}
	for p := abs; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		switch {
		case err == nil && !st.IsDir():
			return fmt.Errorf("report dir %s cannot be created: %s is not a directory %s", dir, p, fix)
		case err == nil:
			// W_OK|X_OK: create entries in it. access(2) answers for the
			// real uid, which is the effective one here (no setuid).
			if err := unix.Access(p, unix.W_OK|unix.X_OK); err != nil {
				return fmt.Errorf("report dir %s is not writable: %s: %w %s", dir, p, err, fix)
			}
			if readOnlyMount(p) {
				return fmt.Errorf("report dir %s is not writable: %s is on a read-only filesystem %s", dir, p, fix)
			}
			return nil
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("report dir %s cannot be created: %w %s", dir, err, fix)
		}
		if filepath.Dir(p) == p {
			return fmt.Errorf("report dir %s cannot be created: no parent exists %s", dir, fix)
		}
	}
}

// readOnlyMount says whether p lies on a read-only mount (root passes
// access(2) there, and procfs and sysfs refuse new files anyway).
func readOnlyMount(p string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return false
	}
	if st.Flags&unix.ST_RDONLY != 0 {
		return true
	}
	switch st.Type {
	case unix.PROC_SUPER_MAGIC, unix.SYSFS_MAGIC:
		return true
	}
	return false
}

// Write writes the report directory and returns the summary's path.
func Write(dir string, run Run, results []runner.Result) (string, error) {
	resDir := filepath.Join(dir, "results")
	if err := os.MkdirAll(resDir, 0o755); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	for _, r := range results {
		data, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return "", fmt.Errorf("report: %w", err)
		}
		name := safe(r.Scenario + "_" + r.PluginVersion + ".json")
		if err := os.WriteFile(filepath.Join(resDir, name), data, 0o644); err != nil {
			return "", fmt.Errorf("report: %w", err)
		}
	}
	md := Markdown(run, results)
	summary := filepath.Join(dir, "summary.md")
	if err := os.WriteFile(summary, []byte(md), 0o644); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	if p := os.Getenv("GITHUB_STEP_SUMMARY"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = f.WriteString(md)
			f.Close()
		}
		if err != nil {
			return "", fmt.Errorf("report: GITHUB_STEP_SUMMARY: %w", err)
		}
	}
	junit, err := JUnit(run, results)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "junit.xml"), junit, 0o644); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	return summary, nil
}

func safe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

// Markdown is the human summary: a table of verdicts, then each
// scenario's timeline (ADD → reboot → PID reuse → DEL → lo).
func Markdown(run Run, results []runner.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# pidreuse run %s (%s tier)\n\n", run.ID, run.Tier)
	pass, fail, none := 0, 0, 0
	for _, r := range results {
		switch r.Verdict() {
		case "pass":
			pass++
		case "FAIL":
			fail++
		default:
			none++
		}
	}
	fmt.Fprintf(&b, "%d passed, %d failed, %d without a verdict — started %s\n\n", pass, fail, none, run.Started.UTC().Format(time.RFC3339))
	for _, in := range run.Inputs {
		fmt.Fprintf(&b, "- %s\n", in)
	}
	if len(run.Inputs) > 0 {
		b.WriteString("\n")
	}
	for _, a := range run.Artifacts {
		fmt.Fprintf(&b, "Artifacts of the failed run (serial console, journals, agent state): `%s`\n\n", a)
	}
	b.WriteString("| scenario | plugins | netns path | PID reused | DEL result | host lo | expected | verdict |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		del := "ok"
		if r.DelError != "" {
			del = "error: " + r.DelError
		}
		exp := "UP"
		if !r.ExpectedLoUp {
			exp = "DOWN"
		}
		fmt.Fprintf(&b, "| %s | %s | `%s` | %v | %s | %s | %s | **%s** |\n", r.Scenario, cell(r.PluginVersion), cell(r.NetnsPath), r.PIDReused, cell(del), r.LoState(), exp, r.Verdict())
	}
	for _, r := range results {
		fmt.Fprintf(&b, "\n## %s (%s): %s\n\n", r.Scenario, r.PluginVersion, r.Verdict())
		if r.Error != "" {
			fmt.Fprintf(&b, "No verdict: %s\n\n", r.Error)
		}
		if r.Profile != "" || r.Runtime != "" {
			fmt.Fprintf(&b, "Node `%s`, runtime %s.\n\n", r.Profile, r.Runtime)
		}
		if ph := r.Phases; ph != nil {
			b.WriteString(PhasesTable(*ph))
			b.WriteString("\n")
		}
		var t0 time.Time
		for i, e := range r.Timeline {
			if i == 0 {
				t0 = e.At
			}
			fmt.Fprintf(&b, "- `+%7.3fs` %s %s\n", e.At.Sub(t0).Seconds(), e.Step, e.Detail)
		}
		if len(r.Dels) > 0 {
			b.WriteString("\n| CNI DEL at | pod | netns path | issued by | error |\n|---|---|---|---|---|\n")
			for _, d := range r.Dels {
				fmt.Fprintf(&b, "| %s | %s | `%s` | %s | %s |\n", d.Time, cell(d.Pod), cell(d.NetnsPath), cell(d.Issuer), cell(runner.OrNone(d.Error)))
			}
		}
		if len(r.Joins) > 0 {
			b.WriteString("\n| namespace | the container's | its pod's (the pause's) | the host's |\n|---|---|---|---|\n")
			for _, j := range r.Joins {
				fmt.Fprintf(&b, "| %s | `%s` | `%s` | `%s` |\n", j.Type, cell(j.Container), cell(j.Pod), cell(j.Host))
			}
		}
		if len(r.Checks) > 0 {
			b.WriteString("\n| check | expectation | holds | saw |\n|---|---|---|---|\n")
			for _, c := range r.Checks {
				ok := "yes"
				if !c.OK {
					ok = "**NO**"
				}
				fmt.Fprintf(&b, "| `%s` (%s) | %s | %s | %s |\n", c.ID, c.Kind, cell(c.Name), ok, cell(c.Detail))
			}
		}
	}
	return b.String()
}

// PhasesTable shows where a scenario's time went, one column per phase
// (runner.Phases), and each phase's share of the wall.
func PhasesTable(ph runner.Phases) string {
	cols := []struct {
		name string
		s    float64
	}{
		{"boot", ph.BootS}, {"ready", ph.ReadyS}, {"pods", ph.PodsS}, {"prepare", ph.PrepareS},
		{"reboot", ph.RebootS}, {"DEL", ph.DelS}, {"checks", ph.ChecksS}, {"teardown", ph.TeardownS},
	}
	var head, rule, secs, share strings.Builder
	for _, c := range cols {
		head.WriteString(" " + c.name + " |")
		rule.WriteString("---|")
		fmt.Fprintf(&secs, " %.1f |", c.s)
		pct := 0.0
		if ph.WallS > 0 {
			pct = 100 * c.s / ph.WallS
		}
		fmt.Fprintf(&share, " %.0f%% |", pct)
	}
	return fmt.Sprintf("| phase (s) |%s wall |\n|---|%s---|\n| seconds |%s **%.1f** |\n| share |%s 100%% |\n",
		head.String(), rule.String(), secs.String(), ph.WallS, share.String())
}

// cell makes s fit a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", "<br>")
}

type junitSuite struct {
	XMLName  xml.Name    `xml:"testsuite"`
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Time     float64     `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// JUnit renders the results as one JUnit test suite: a mismatch is a
// failure, a missing verdict an error.
func JUnit(run Run, results []runner.Result) ([]byte, error) {
	s := junitSuite{Name: "pidreuse " + run.Tier}
	for _, r := range results {
		c := junitCase{Name: r.Scenario + " [" + r.PluginVersion + "]", Classname: "pidreuse." + run.Tier, Time: float64(r.DurationMs) / 1000}
		s.Time += c.Time
		switch r.Verdict() {
		case "FAIL":
			s.Failures++
			text := "DEL error: " + r.DelError
			for _, ch := range r.FailedChecks() {
				text += "\ncheck failed: " + ch.ID + " (" + ch.Name + "): " + ch.Detail
			}
			c.Failure = &junitProblem{Message: fmt.Sprintf("host lo %s, expected %s; %d checks failed", r.LoState(), map[bool]string{true: "UP", false: "DOWN"}[r.ExpectedLoUp], len(r.FailedChecks())), Text: text}
		case "NO-VERDICT":
			s.Errors++
			c.Error = &junitProblem{Message: "no verdict", Text: r.Error}
		}
		s.Cases = append(s.Cases, c)
		s.Tests++
	}
	out, err := xml.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("report: junit: %w", err)
	}
	return append([]byte(xml.Header), out...), nil
}
