package reap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness/libvirt"
)

// libvirtCleanTimeout bounds the domain phase, so a hung libvirtd cannot
// stop clean from reaching the dirs.
const libvirtCleanTimeout = 2 * time.Minute

// Domains destroys and undefines our stale libvirt domains on the host at
// uri (socket: libvirtd's, for a local uri), leaving those of live runs
// alone. This machine's libvirtd not running has no domains to reap: that
// is said (on Warn), not failed, so clean still works on a machine that
// only ran the sandbox tier. A host named on purpose (uriGiven) that
// cannot be reached is an error: its domains may be there.
func (r *Reaper) Domains(ctx context.Context, uri, socket string, uriGiven bool) (removed, held int, _ error) {
	tmp, f, verb := r.Tmp, r.Filter, r.Verb()
	ctx, cancel := context.WithTimeout(ctx, libvirtCleanTimeout)
	defer cancel()
	lv, err := libvirt.ConnectURI(ctx, uri, socket)
	if err != nil {
		if uriGiven {
			return 0, 0, fmt.Errorf("clean: libvirt host %s: %w", uri, err)
		}
		fmt.Fprintf(r.Warn, "pidreuse: clean: skipping libvirt domains: %v\n", err)
		return 0, 0, nil
	}
	defer lv.Close()
	names, err := lv.ListDomains(ctx, Prefix)
	if err != nil {
		return 0, 0, fmt.Errorf("clean: %w (is libvirtd healthy? `virsh -c qemu:///system list --all`)", err)
	}
	var items []leftover
	for _, n := range names {
		if !f.Ours(n) {
			continue
		}
		dirs := domainDirs(ctx, lv, n, tmp)
		it := leftover{Name: n, LastActive: domainLastActive(n, dirs)}
		for _, d := range dirs {
			if it.Holder = dirHolder(d); it.Holder != nil {
				break
			}
		}
		items = append(items, it)
	}
	held = r.reportHeld(items, "domain", "")
	var errs []error
	// The SSH port leases killed runs left (live ones are skipped); they
	// carry no run ID, and a dead lease is nobody's, whatever --run says.
	if !r.DryRun {
		if n, err := libvirt.RemoveStalePortLocks(); err != nil {
			errs = append(errs, fmt.Errorf("clean: %w", err))
		} else if n > 0 {
			fmt.Fprintf(r.Out, "%s %d SSH port leases of dead runs under %s\n", verb, n, libvirt.PortLockDir)
		}
	}
	for _, n := range selectStale(items, f, r.Now, r.OlderThan) {
		if !r.DryRun {
			if err := lv.Destroy(ctx, n); err != nil {
				errs = append(errs, fmt.Errorf("clean: %w (try `virsh -c qemu:///system destroy %s`)", err, n))
				continue
			}
			if err := lv.Undefine(ctx, n); err != nil {
				errs = append(errs, fmt.Errorf("clean: %w (try `virsh -c qemu:///system undefine --nvram %s`)", err, n))
				continue
			}
		}
		fmt.Fprintf(r.Out, "%s domain %s\n", verb, n)
		removed++
	}
	if lv.Target().Remote() {
		errs = append(errs, r.volumes(ctx, lv))
	}
	return removed, held, errors.Join(errs...)
}

// volumes removes a remote host's per-node volumes (overlay, console log,
// layer: named after their domain) whose domain is gone, i.e. whose run
// ended without its Close or was just cleaned, unless a live run holds the
// dir the domain's name points at (its volumes are made just before its
// domain is defined). The image volumes (pidreuse-base-*) are a cache
// shared by every run and stay.
func (r *Reaper) volumes(ctx context.Context, lv *libvirt.Client) error {
	if _, err := lv.OpenPool(ctx); errors.Is(err, libvirt.ErrNoPool) {
		return nil // clean creates nothing: no pool, no volumes of ours
	} else if err != nil {
		return fmt.Errorf("clean: %w", err)
	}
	vols, err := lv.ListVolumes(ctx, Prefix)
	if err != nil {
		return fmt.Errorf("clean: %w", err)
	}
	domains, err := lv.ListDomains(ctx, Prefix)
	if err != nil {
		return fmt.Errorf("clean: %w", err)
	}
	var errs []error
	for _, v := range vols {
		domain, _, _ := strings.Cut(v, ".")
		if strings.HasPrefix(v, libvirt.VolumePrefix+"base-") || slices.Contains(domains, domain) || !r.Filter.Ours(domain) {
			continue
		}
		if slices.ContainsFunc(domainDirs(ctx, lv, domain, r.Tmp), func(d string) bool { return dirHolder(d) != nil }) {
			fmt.Fprintf(r.Out, "left volume %s of %s: a live run holds its dir\n", v, lv.Target())
			continue
		}
		if !r.DryRun {
			if err := lv.DeleteVolume(ctx, v); err != nil {
				errs = append(errs, fmt.Errorf("clean: %w", err))
				continue
			}
		}
		fmt.Fprintf(r.Out, "%s volume %s of %s\n", r.Verb(), v, lv.Target())
	}
	return errors.Join(errs...)
}

// domainDirs are the dirs whose locks say a domain is in use: the owner
// dir its metadata names (vm.Node locks it for the node's life), and, for
// domains made before there was metadata, the dirs its name points at:
// $TMPDIR/NAME (e2e suites) and $TMPDIR/pidreuse-RUNID for a domain
// pidreuse-RUNID-NODE (pidreuse run).
func domainDirs(ctx context.Context, lv *libvirt.Client, name, tmp string) []string {
	var dirs []string
	if d, err := lv.OwnerDir(ctx, name); err == nil && d != "" {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, filepath.Join(tmp, name))
	if i := strings.LastIndex(name, "-"); i > len(Prefix) {
		dirs = append(dirs, filepath.Join(tmp, name[:i]))
	}
	return dirs
}

// domainLastActive is when a domain last showed activity, from files
// libvirt and our runs write: its config (written at define), its status
// file and QEMU log (written at every start and stop), and its dirs
// (domainDirs), whose overlay disk and console log a live VM keeps
// writing.
func domainLastActive(name string, dirs []string) time.Time {
	var last time.Time
	for _, p := range []string{
		"/etc/libvirt/qemu/" + name + ".xml",
		"/run/libvirt/qemu/" + name + ".xml",
		"/var/log/libvirt/qemu/" + name + ".log",
	} {
		if fi, err := os.Stat(p); err == nil && fi.ModTime().After(last) {
			last = fi.ModTime()
		}
	}
	for _, d := range dirs {
		if t := treeLastActive(d); t.After(last) {
			last = t
		}
	}
	return last
}
