package kube

import (
	"testing"
	"time"
)

func TestLogPath(t *testing.T) {
	c := Container{ID: "c1", Name: "sdn", Attempt: 2, Labels: map[string]string{
		"io.kubernetes.pod.namespace": "kube-system",
		"io.kubernetes.pod.name":      "sdn-pidreuse-node",
		"io.kubernetes.pod.uid":       "27dfb178",
	}}
	got, err := LogPath(c)
	if want := "/var/log/pods/kube-system_sdn-pidreuse-node_27dfb178/sdn/2.log"; err != nil || got != want {
		t.Fatalf("LogPath = %q, %v; want %q", got, err, want)
	}
	c.Labels = nil
	if _, err := LogPath(c); err == nil {
		t.Fatal("a container without kubelet's labels has no log path kubelet chose")
	}
}

// The answers read the same out of CRI-O/containerd's CRI log format and
// Docker's JSON lines; other lines and a stamp that does not parse are left
// out.
func TestParseProbeAnswers(t *testing.T) {
	log := `2026-12-07T13:46:12.40Z stderr F 2026/12/07 13:46:12 podserver: serving /healthz on :10256
2026-12-07T13:46:17.10Z stdout F podserver: healthz answered at 2026-12-07T13:46:17.101234567Z for 10.0.2.15:43512
{"log":"podserver: healthz answered at 2026-12-07T13:46:22.1Z for 10.0.2.15:43600\n","stream":"stdout","time":"2026-12-07T13:46:22.100Z"}
2026-12-07T13:46:27.10Z stdout F podserver: healthz answered at yesterday for 10.0.2.15:1
`
	got := ParseProbeAnswers([]byte(log))
	want := []ProbeAnswer{
		{At: time.Date(2026, 12, 7, 13, 46, 17, 101234567, time.UTC), From: "10.0.2.15:43512"},
		{At: time.Date(2026, 12, 7, 13, 46, 22, 100000000, time.UTC), From: "10.0.2.15:43600"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if !got[i].At.Equal(want[i].At) || got[i].From != want[i].From {
			t.Errorf("answer %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}
