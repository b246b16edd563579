package crionode

import (
	"io/fs"
	"strconv"
	"strings"
	"testing"

	"github.com/pidreuse/pidreuse/internal/crioguest"
)

// The image's config files spell out names the harness relies on
// (internal/crioguest): they must say the same.
func TestConfigsAgreeWithGuestNames(t *testing.T) {
	read := func(name string) string {
		data, err := fs.ReadFile(rootfs, "rootfs/"+name)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	for file, wants := range map[string][]string{
		"etc/kubernetes/kubelet.yaml":                            {crioguest.CRISocket},
		"etc/crictl.yaml":                                        {crioguest.CRISocket},
		"etc/systemd/system/kubelet.service":                     {"--node-ip=" + crioguest.NodeIP},
		"etc/systemd/system/" + crioguest.SquatUnit:              {crioguest.SquatFile, crioguest.SquatResult},
		"etc/systemd/system/pidreuse-load-images.service":        {"oci:" + crioguest.PodImageDir + ":v1", "containers-storage:" + crioguest.PodImage},
		"etc/crio/crio.conf.d/10-pidreuse.conf":                  {`pause_image = "` + crioguest.PodImage + `"`},
		"etc/kubernetes/manifests/" + crioguest.WebPod + ".yaml": {"name: " + crioguest.WebPod, "image: " + crioguest.PodImage},
		"etc/kubernetes/manifests/" + crioguest.SDNPod + ".yaml": {"name: " + crioguest.SDNPod, "hostNetwork: true", "host: " + crioguest.NodeIP, "port: " + strconv.Itoa(crioguest.SDNPort)},
	} {
		got := read(file)
		for _, w := range wants {
			if !strings.Contains(got, w) {
				t.Errorf("%s does not say %q", file, w)
			}
		}
	}
}
