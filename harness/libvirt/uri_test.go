package libvirt

import (
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	for _, tc := range []struct {
		uri     string
		want    Target
		wantErr string
	}{
		{uri: "", want: Target{Transport: TransportUnix, Socket: DefaultSocket}},
		{uri: "qemu:///system", want: Target{Transport: TransportUnix, Socket: DefaultSocket}},
		{uri: "qemu+unix:///system?socket=/tmp/s", want: Target{Transport: TransportUnix, Socket: "/tmp/s"}},
		{
			uri:  "qemu+ssh://ci@build2:2222/system?keyfile=/k&known_hosts=/kh",
			want: Target{Transport: TransportSSH, Host: "build2", Port: "2222", User: "ci", KeyFile: "/k", KnownHosts: "/kh", Socket: DefaultSocket},
		},
		{uri: "qemu+tcp://127.0.0.1:16509/system", want: Target{Transport: TransportTCP, Host: "127.0.0.1", Port: "16509", Socket: DefaultSocket}},
		{uri: "qemu+tcp://build2/system", wantErr: "use qemu+ssh://build2/system"},
		{uri: "qemu:///session", wantErr: "only the system instance"},
		{uri: "xen:///system", wantErr: `driver "xen"`},
		{uri: "qemu+tls://h/system", wantErr: `transport "tls"`},
		{uri: "qemu+ssh:///system", wantErr: "needs a host"},
		{uri: "qemu://build2/system", wantErr: "without a transport"},
		{uri: "qemu+ssh://h/system?no_verify=1", wantErr: `parameter "no_verify"`},
	} {
		got, err := ParseURI(tc.uri)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseURI(%q) error = %v, want one containing %q", tc.uri, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseURI(%q): %v", tc.uri, err)
			continue
		}
		got.URI = ""
		if got != tc.want {
			t.Errorf("ParseURI(%q) = %+v, want %+v", tc.uri, got, tc.want)
		}
		if got.Remote() != (tc.want.Transport != TransportUnix) {
			t.Errorf("ParseURI(%q).Remote() = %v", tc.uri, got.Remote())
		}
	}
}

func TestParseURIList(t *testing.T) {
	ts, err := ParseURIList("qemu:///system, qemu+ssh://root@127.0.0.1/system?keyfile=/k&known_hosts=/kh")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].Remote() || !ts[1].Remote() || ts[1].String() != "qemu+ssh://root@127.0.0.1/system" {
		t.Fatalf("ParseURIList = %+v", ts)
	}
	if ts, err := ParseURIList(""); err != nil || len(ts) != 1 || ts[0].Remote() {
		t.Fatalf(`ParseURIList("") = %+v, %v; want the local host`, ts, err)
	}
	if _, err := ParseURIList("qemu:///system,bogus"); err == nil {
		t.Fatal("ParseURIList accepted a bad entry")
	}
}
