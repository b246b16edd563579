package vm

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pidreuse/pidreuse/harness/libvirt"
	"github.com/pidreuse/pidreuse/images"
)

// remoteFiles are the node's volumes on a remote libvirt host: the image's
// (shared by every run, uploaded once, named by content hash) and the
// node's own (overlay, console log, layer: removed at Close).
type remoteFiles struct {
	// own are the node's volumes, deleted at Close.
	own []string
	// console is the console log's volume name.
	console string
}

// baseVolume names an image artifact's volume by its content hash, so
// every run of every harness using the host shares one upload.
func baseVolume(a images.Artifact, ext string) string {
	sum := a.SHA256
	if len(sum) > 16 {
		sum = sum[:16]
	}
	return libvirt.VolumePrefix + "base-" + sum + ext
}

// prepareRemote puts what the domain needs into the libvirt host's storage
// pool and points the domain spec at it: the image's kernel, initrd and
// base disk (uploaded once per content hash), an overlay made there, the
// console log written there, the layer disk uploaded for this node.
func (n *Node) prepareRemote(ctx context.Context) error {
	t := n.lv.Target()
	dir, err := n.lv.EnsurePool(ctx)
	if err != nil {
		return err
	}
	n.remote = &remoteFiles{}
	img := n.opts.Image
	m := img.Manifest
	upload := func(src string, a images.Artifact, ext string) (string, error) {
		name := baseVolume(a, ext)
		start := time.Now()
		p, uploaded, err := n.lv.UploadOnce(ctx, src, name, n.opts.Progress)
		if err != nil {
			return "", err
		}
		if uploaded {
			n.opts.Progress(fmt.Sprintf("%s: uploaded %s (%d MiB) to %s's pool %s in %s", n.opts.Name, filepath.Base(src), a.Size>>20, t, libvirt.PoolName, time.Since(start).Round(100*time.Millisecond)))
		} else {
			n.opts.Progress(fmt.Sprintf("%s: %s is in %s's pool already (volume %s)", n.opts.Name, filepath.Base(src), t, name))
		}
		return p, nil
	}
	if n.spec.Kernel, err = upload(img.Kernel, m.Kernel, ".vmlinuz"); err != nil {
		return err
	}
	if n.spec.Initrd, err = upload(img.Initrd, m.Initrd, ".initrd"); err != nil {
		return err
	}
	base, err := upload(img.BaseDisk, m.BaseDisk, ".qcow2")
	if err != nil {
		return err
	}
	size, err := libvirt.QCOW2VirtualSize(img.BaseDisk)
	if err != nil {
		return err
	}
	overlay := n.opts.Name + ".qcow2"
	n.remote.own = append(n.remote.own, overlay)
	if n.spec.Disk, err = n.lv.CreateOverlayVolume(ctx, overlay, base, size); err != nil {
		return err
	}
	// virtlogd writes the console into the pool's dir; a pool refresh
	// then shows it as a volume, which is how it comes back here.
	n.remote.console = n.opts.Name + ".console.log"
	n.remote.own = append(n.remote.own, n.remote.console)
	n.spec.ConsoleLog = filepath.Join(dir, n.remote.console)
	for i := range n.spec.ReadOnlyDisks {
		name := n.opts.Name + ".layer" + strconv.Itoa(i)
		n.remote.own = append(n.remote.own, name)
		if err := n.lv.UploadVolume(ctx, n.spec.ReadOnlyDisks[i].Path, name, true); err != nil {
			return err
		}
		if n.spec.ReadOnlyDisks[i].Path, err = n.lv.VolumePath(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// fetchConsole copies the remote console log to the local path the rest of
// the node reads (n.console). Best effort: an error says why it is stale.
func (n *Node) fetchConsole(ctx context.Context) error {
	if n.remote == nil || n.remote.console == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := n.lv.DownloadVolume(ctx, n.remote.console, n.console); err != nil {
		if errors.Is(err, libvirt.ErrVolumeNotFound) {
			return nil // the domain never started: no console yet
		}
		return fmt.Errorf("fetch the console log of %s: %w", n.opts.Name, err)
	}
	return nil
}

// consoleTail is ConsoleTail of this node's console, fetched first when it
// lives on a remote host.
func (n *Node) consoleTail(lines int) string {
	if err := n.fetchConsole(context.Background()); err != nil {
		return err.Error()
	}
	return ConsoleTail(n.console, lines)
}

// removeRemote deletes the node's own volumes (not the shared image's).
func (n *Node) removeRemote(ctx context.Context) error {
	if n.remote == nil {
		return nil
	}
	// The console log is virtlogd's file: the pool knows it only after a
	// rescan.
	errs := []error{n.lv.RefreshPool(ctx)}
	for _, v := range n.remote.own {
		errs = append(errs, n.lv.DeleteVolume(ctx, v))
	}
	return errors.Join(errs...)
}

// keepRemoteNote tells where a kept remote node's files are.
func (n *Node) keepRemoteNote() string {
	if n.remote == nil {
		return ""
	}
	return fmt.Sprintf(" (its volumes %v are in pool %s on %s)", n.remote.own, libvirt.PoolName, n.lv.Target())
}
