// Package crionode turns the node image into a Kubernetes node: CRI-O,
// kubelet, crictl and pinns built from source, Debian's conmon and runc,
// our CNI network, two static pods and their image, loaded into CRI-O's
// storage at first boot. The files under rootfs/ are laid into the image
// as they are.
package crionode

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pidreuse/pidreuse/images"
	"github.com/pidreuse/pidreuse/images/ociimage"
	"github.com/pidreuse/pidreuse/internal/crioguest"
)

//go:embed rootfs
var rootfs embed.FS

// Components are host paths of the binaries built from source.
type Components struct {
	Kubelet, CRIO, Pinns, Crictl string
	// PodServer is cmd/podserver, built static: the pods' only binary.
	PodServer string
}

// Packages are the Debian packages the node adds: conmon 2.1.6 and runc
// 1.1.5 are what CRI-O 1.34 runs with here; skopeo loads the pod image.
var Packages = []string{"conmon", "runc", "libseccomp2", "skopeo", "containernetworking-plugins"}

// Artifacts are what a failed run keeps from the node besides what every
// VM gives (console, journals, agent state): scripts by output file name,
// for vm.Options.Artifacts.
var Artifacts = map[string]string{
	"crio.log":    "journalctl -b -1 -u crio --no-pager -o short-precise; echo; journalctl -b 0 -u crio --no-pager -o short-precise",
	"kubelet.log": "journalctl -b -1 -u kubelet --no-pager -o short-precise; echo; journalctl -b 0 -u kubelet --no-pager -o short-precise",
	"cri.json":    "nodeagent cri version; nodeagent cri pods; nodeagent cri containers",
	"units.txt":   "systemctl --no-pager status crio kubelet pidreuse-squat pidreuse-load-images",
}

// Units are enabled in the image.
var Units = []string{"crio.service", "kubelet.service", "pidreuse-load-images.service", "pidreuse-squat.service"}

// Inputs adds the Kubernetes node to base. stageDir receives generated
// files (the pod image layout, the embedded configs) that the image
// build copies; it must outlive the build.
func Inputs(base images.Inputs, c Components, stageDir string) (images.Inputs, error) {
	in := base
	in.Packages = append(append([]string{}, base.Packages...), Packages...)
	in.Enable = append(append([]string{}, base.Enable...), Units...)
	in.Files = append([]images.File{}, base.Files...)
	// A slice, not a map: the image hash covers the order of Files.
	for _, f := range []struct{ src, dst string }{
		{c.Kubelet, "/usr/local/bin/kubelet"}, {c.CRIO, "/usr/local/bin/crio"},
		{c.Pinns, "/usr/local/bin/pinns"}, {c.Crictl, crioguest.CrictlBinary},
	} {
		src, dst := f.src, f.dst
		if src == "" {
			return in, fmt.Errorf("crio node: no binary for %s", dst)
		}
		if _, err := os.Stat(src); err != nil {
			return in, fmt.Errorf("crio node: %s: %w", dst, err)
		}
		in.Files = append(in.Files, images.File{Src: src, Dst: dst, Mode: 0o755})
	}
	// Configs, one file each so they merge into the image's /etc.
	stageRoot := filepath.Join(stageDir, "rootfs")
	err := fs.WalkDir(rootfs, "rootfs", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := rootfs.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("rootfs", p)
		host := filepath.Join(stageRoot, rel)
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(host, data, 0o644); err != nil {
			return err
		}
		in.Files = append(in.Files, images.File{Src: host, Dst: "/" + rel, Mode: 0o644})
		return nil
	})
	if err != nil {
		return in, fmt.Errorf("crio node: stage configs: %w", err)
	}
	// The pod image: podserver, also installed as /pause for the infra
	// process, both exiting on SIGTERM.
	layout := filepath.Join(stageDir, "pod-image")
	if err := ociimage.Write(layout, ociimage.Image{
		Ref: "v1",
		Files: []ociimage.File{
			{Path: "/podserver", Src: c.PodServer, Mode: 0o755},
			{Path: "/pause", Src: c.PodServer, Mode: 0o755},
		},
		Entrypoint: []string{"/podserver"},
	}); err != nil {
		return in, fmt.Errorf("crio node: pod image: %w", err)
	}
	in.Files = append(in.Files, images.File{Src: layout, Dst: crioguest.PodImageDir})
	return in, nil
}
