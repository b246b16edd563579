package kube

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/deadline"
	"github.com/pidreuse/pidreuse/internal/crioguest"
)

// ProbeAnswer is one /healthz request a pod's podserver answered.
type ProbeAnswer struct {
	// At is the node's wall clock when it answered (Clock.FromWall places
	// it on the harness's).
	At time.Time
	// From is the caller's address: kubelet's probe of the node's own
	// address comes from that address.
	From string
}

// LogPath is the file kubelet has the runtime write c's output to:
// <namespace>_<pod>_<uid>/<container>/<attempt>.log under the pod log
// directory, from the labels kubelet puts on every container it creates.
func LogPath(c Container) (string, error) {
	ns, pod, uid := c.Labels["io.kubernetes.pod.namespace"], c.Labels["io.kubernetes.pod.name"], c.Labels["io.kubernetes.pod.uid"]
	if ns == "" || pod == "" || uid == "" {
		return "", fmt.Errorf("container %s (%s) has no pod labels: kubelet did not create it", c.ID, c.Name)
	}
	return path.Join(crioguest.PodLogDir, ns+"_"+pod+"_"+uid, c.Name, strconv.Itoa(c.Attempt)+".log"), nil
}

// ProbesAnswered reads the answers c's podserver logged, oldest first.
func ProbesAnswered(ctx context.Context, n harness.Node, c Container) ([]ProbeAnswer, error) {
	file, err := LogPath(c)
	if err != nil {
		return nil, err
	}
	var res harness.ExecResult
	err = deadline.Run(ctx, "reading "+c.Name+"'s log on "+n.Name(), deadline.ShellStep, func(ctx context.Context) error {
		var err error
		res, err = n.Exec(ctx, "grep", "-F", "--", crioguest.HealthzAnswered, file)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: read %s's log %s: %w", n.Name(), c.Name, file, err)
	}
	switch res.ExitCode {
	case 0:
		return ParseProbeAnswers(res.Stdout), nil
	case 1: // no line yet
		return nil, nil
	}
	return nil, fmt.Errorf("%s: read %s's log %s: exit %d: %s", n.Name(), c.Name, file, res.ExitCode, bytes.TrimSpace(res.Stderr))
}

// answerLine finds podserver's line in a container log line of any
// runtime's format: CRI's "<time> stdout F <line>" (CRI-O, containerd) or
// Docker's JSON ("log":"<line>\n", cri-dockerd).
var answerLine = regexp.MustCompile(regexp.QuoteMeta(crioguest.HealthzAnswered) + ` (\S+) for ([0-9A-Za-z.:\[\]%]+)`)

// ParseProbeAnswers reads podserver's answer lines out of a container log;
// other lines, and stamps that do not parse, are left out.
func ParseProbeAnswers(log []byte) []ProbeAnswer {
	var out []ProbeAnswer
	for _, m := range answerLine.FindAllSubmatch(log, -1) {
		at, err := time.Parse(time.RFC3339Nano, string(m[1]))
		if err != nil {
			continue
		}
		out = append(out, ProbeAnswer{At: at, From: string(m[2])})
	}
	return out
}
