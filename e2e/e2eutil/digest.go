package e2eutil

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
)

// DigestFile is where RegisterFailureDigest puts its text: the make targets
// print it after Ginkgo's own summary, whose failure lines name only a
// spec and a file:line. A CI log is often read from its tail, and the
// reason a spec failed is then hundreds of lines above it.
func DigestFile() string { return filepath.Join(ReportDir(), "digest.txt") }

// RegisterFailureDigest writes the suite's failure digest to DigestFile
// once every process is done (or removes a stale one when nothing
// failed). Call it at the top level of one suite file.
func RegisterFailureDigest() bool {
	return ReportAfterSuite("failure digest", func(r Report) {
		text := FailureDigest(r, ReportDir())
		if text == "" {
			if err := os.Remove(DigestFile()); err != nil && !os.IsNotExist(err) {
				GinkgoWriter.Printf("remove the old failure digest: %v\n", err)
			}
			return
		}
		if err := os.MkdirAll(ReportDir(), 0o755); err != nil {
			GinkgoWriter.Printf("failure digest: %v\n", err)
			return
		}
		if err := os.WriteFile(DigestFile(), []byte(text), 0o644); err != nil {
			GinkgoWriter.Printf("failure digest: %v\n", err)
		}
	})
}

// digestLines bounds what one failure shows of its message, and
// digestFull how many failures show a message at all: the digest is read
// from a log's tail, so the first failures' reasons must fit in it.
const (
	digestLines = 8
	digestFull  = 2
	digestWidth = 240
)

// startRetried names the report entry NoteStartRetried adds.
const startRetried = "start retried"

// NoteStartRetried records that the node called name failed to start and
// is being started again: in the spec's report and the failure digest,
// which lists every retried start even when the suite passed.
func NoteStartRetried(name string, err error) {
	GinkgoWriter.Printf("starting %s failed, starting a fresh node once more: %v\n", name, err)
	AddReportEntry(startRetried, name+": "+err.Error())
}

// FailureDigest says, in a few lines per failed spec, which spec failed,
// in which node, where, and the first lines of why; then each node start
// that was retried, with the first lines of its first error. "" when
// nothing failed and no start was retried.
func FailureDigest(r types.Report, reportDir string) string {
	var failed types.SpecReports
	var retried []string
	for _, s := range r.SpecReports {
		if s.State.Is(types.SpecStateFailureStates) {
			failed = append(failed, s)
		}
		for _, e := range s.ReportEntries {
			if e.Name == startRetried {
				retried = append(retried, e.Value.String())
			}
		}
	}
	if len(failed) == 0 && len(retried) == 0 {
		return ""
	}
	var b strings.Builder
	if len(failed) > 0 {
		fmt.Fprintf(&b, "e2e: %d failed (the whole output is above; artifacts of failed nodes under %s):\n",
			len(failed), filepath.Join(reportDir, "artifacts"))
	}
	for i, s := range failed {
		name := specName(s)
		where := ""
		if s.Failure.Location.FileName != "" {
			where = " (" + s.Failure.Location.String() + ")"
		}
		fmt.Fprintf(&b, "- %s [%s] %s%s\n", s.State, s.Failure.FailureNodeType, name, where)
		if i >= digestFull {
			continue
		}
		for _, line := range messageLines(s.Failure.Message, digestLines) {
			fmt.Fprintf(&b, "    %s\n", line)
		}
	}
	if len(retried) > 0 {
		fmt.Fprintf(&b, "e2e: %d node starts failed once and were retried (consoles under %s):\n",
			len(retried), filepath.Join(reportDir, "artifacts"))
	}
	for _, msg := range retried {
		for i, line := range messageLines(msg, 3) {
			if i == 0 {
				fmt.Fprintf(&b, "- %s\n", line)
				continue
			}
			fmt.Fprintf(&b, "    %s\n", line)
		}
	}
	return b.String()
}

func specName(s types.SpecReport) string {
	return strings.TrimSpace(strings.Join(append(append([]string{}, s.ContainerHierarchyTexts...), s.LeafNodeText), " "))
}

// gomegaObject is the line Gomega puts before an error's text: its type
// and address; the struct dump after the text is a block of its own.
var gomegaObject = regexp.MustCompile(`^<[^>]+ \| 0x[0-9a-f]+>:?$`)

// messageLines is the first n non-blank lines of a failure message, each
// cut to digestWidth, and a last line saying how many were left out.
// Gomega's dump of an error value (its type line and the struct after
// its text) is left out: the text says it all.
func messageLines(msg string, n int) []string {
	var lines []string
	all := strings.Split(msg, "\n")
	inDump, dumpIndent := false, "" // an open struct dump, its "{"'s indentation
	for i, raw := range all {
		l := strings.TrimSpace(raw)
		indent := raw[:len(raw)-len(strings.TrimLeft(raw, " \t"))]
		switch {
		case inDump:
			inDump = l != "}" || indent != dumpIndent
			continue
		case l == "{":
			inDump, dumpIndent = true, indent
			continue
		case l == "" || gomegaObject.MatchString(l):
			continue
		}
		if len(lines) == n {
			lines = append(lines, fmt.Sprintf("… (%d more lines)", len(all)-i))
			break
		}
		if r := []rune(l); len(r) > digestWidth {
			l = string(r[:digestWidth]) + "…"
		}
		lines = append(lines, l)
	}
	return lines
}
