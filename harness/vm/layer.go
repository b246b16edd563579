package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/pidreuse/pidreuse/images/layer"
	"github.com/pidreuse/pidreuse/internal/shell"
)

// checkLayer makes sure the guest sees the given binaries, byte for byte,
// where CRI-O and kubelet are started from: a run must never judge the
// image's build while the user believes it judged theirs.
func (n *Node) checkLayer(ctx context.Context) error {
	l := n.opts.Layer
	if l.Empty() {
		return nil
	}
	script := "systemctl is-active " + layer.UnitName
	for _, b := range l.Binaries {
		script += " && sha256sum " + b.GuestPath()
	}
	if l.CNIDir != "" {
		script += " && test -d " + layer.GuestCNIDir
	}
	for _, f := range l.Files {
		script += " && sha256sum " + shell.Quote(f.Path)
	}
	res, err := n.Exec(ctx, "sh", "-c", script)
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("%s", bytes.TrimSpace(append(res.Stdout, res.Stderr...)))
	}
	if err != nil {
		return fmt.Errorf("vm %s: the run's layer (given binaries, plugins, settings) is not in place (journalctl -u %s in the guest): %w", n.opts.Name, layer.UnitName, err)
	}
	got := string(res.Stdout)
	for _, b := range l.Binaries {
		if !strings.Contains(got, b.SHA256+"  "+b.GuestPath()) {
			return fmt.Errorf("vm %s: %s in the guest is not %s (sha256 %s); guest says: %s", n.opts.Name, b.GuestPath(), b.Src, b.SHA256, strings.TrimSpace(got))
		}
	}
	for _, f := range l.Files {
		sum := sha256.Sum256(f.Data)
		if !strings.Contains(got, hex.EncodeToString(sum[:])+"  "+f.Path) {
			return fmt.Errorf("vm %s: the layer did not write %s in the guest; guest says: %s", n.opts.Name, f.Path, strings.TrimSpace(got))
		}
	}
	n.opts.Progress(fmt.Sprintf("%s: the guest runs the given %s", n.opts.Name, layerNames(l)))
	return nil
}

func layerNames(l layer.Layer) string {
	var names []string
	for _, b := range l.Binaries {
		names = append(names, b.Name)
	}
	if l.CNIDir != "" {
		names = append(names, "CNI plugins")
	}
	for _, f := range l.Files {
		names = append(names, f.Path)
	}
	return strings.Join(names, ", ")
}
