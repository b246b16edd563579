package layer

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pidreuse/pidreuse/internal/fileutil"
)

func TestCheckRejectsBadBinaries(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	script := filepath.Join(dir, "crio")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho crio\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    Binary
		want string
	}{
		{"missing", Binary{Name: "crio", Src: filepath.Join(dir, "nope")}, "no such file"},
		{"script", Binary{Name: "crio", Src: script}, "not an ELF"},
		{"no version", Binary{Name: "crio", Src: "/bin/false"}, "--version` failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(ctx, &tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want an error containing %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "--crio: ") {
				t.Errorf("error %q does not name the flag", err)
			}
		})
	}
}

func TestCheckFillsHashAndVersion(t *testing.T) {
	// /bin/true ignores its arguments and answers nothing: a fine stand-in
	// for an ELF whose --version works.
	b := Binary{Name: "kubelet", Src: "/bin/true"}
	if err := Check(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	if len(b.SHA256) != 64 {
		t.Errorf("SHA256 = %q", b.SHA256)
	}
	p := Binary{Name: "pinns", Src: "/bin/false"} // not run: pinns has no --version
	if err := Check(context.Background(), &p); err != nil {
		t.Fatalf("pinns must only be checked as an ELF: %v", err)
	}
}

func TestBuildMakesAnExt4LayerWithTheFiles(t *testing.T) {
	if _, err := exec.LookPath("mke2fs"); err != nil {
		t.Skip("mke2fs not installed (make deps)")
	}
	dir := t.TempDir()
	cni := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(cni, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := fileutil.Copy("/bin/true", filepath.Join(cni, "loopback"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := Build(context.Background(), Layer{
		Binaries: []Binary{{Name: "crio", Src: "/bin/true", SHA256: "x"}, {Name: "pinns", Src: "/bin/false", SHA256: "x"}},
		CNIDir:   cni,
		Files:    []File{{Path: "/etc/crio/crio.conf.d/90-pinning.conf", Data: []byte("[crio.runtime]\n"), Mode: 0o640}},
	}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("debugfs", "-R", "stat /files/etc/crio/crio.conf.d/90-pinning.conf", img).CombinedOutput(); err != nil || !strings.Contains(string(out), "Mode:  0640") {
		t.Errorf("the drop-in in the layer: %v\n%s", err, out)
	}
	if _, err := Build(context.Background(), Layer{Files: []File{{Path: "etc/x"}}}, dir); err == nil {
		t.Error("a relative file path must be an error")
	}
	if _, err := os.Stat(filepath.Join(dir, "layer-stage")); !os.IsNotExist(err) {
		t.Errorf("staging tree left behind: %v", err)
	}
	for _, p := range []string{"/bin/crio", "/bin/pinns", "/cni/loopback"} {
		out, err := exec.Command("debugfs", "-R", "stat "+p, img).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Mode:  0755") {
			t.Errorf("%s in the layer: %v\n%s", p, err, out)
		}
	}
	if _, err := Build(context.Background(), Layer{Binaries: []Binary{{Name: "crio", Src: "/bin/true"}}}, dir); err == nil {
		t.Error("an unchecked binary must be an error")
	}
	if _, err := Build(context.Background(), Layer{}, dir); err == nil {
		t.Error("an empty layer must be an error")
	}
	if _, err := Build(context.Background(), Layer{Binaries: []Binary{{Name: "crio", Src: "/bin/true", SHA256: "x"}, {Name: "crio", Src: "/bin/true", SHA256: "x"}}}, dir); err == nil {
		t.Error("a binary given twice must be an error")
	}
}

func TestScriptOverlaysEveryDir(t *testing.T) {
	for _, o := range Overlays {
		want := "lowerdir=" + GuestMount + "/" + o.Layer + ":" + o.Guest + " " + o.Guest
		if !strings.Contains(Script, want) {
			t.Errorf("script lacks %q:\n%s", want, Script)
		}
	}
	if !strings.Contains(Script, "cp -a "+GuestMount+"/files/. /") {
		t.Errorf("script does not copy the layer's files into place:\n%s", Script)
	}
	if !strings.Contains(Unit, "ConditionKernelCommandLine="+CmdlineFlag) {
		t.Error("the unit must only run when the VM has a layer")
	}
}
