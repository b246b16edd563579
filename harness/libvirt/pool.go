package libvirt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/pidreuse/pidreuse/harness/deadline"
)

// On a remote libvirt host the guests' disks, kernels, initrds and console
// logs live in one directory storage pool, reached only through libvirt's
// storage API (volume upload and download streams): the harness never
// copies files to the host by other means, so any host libvirt can reach
// will do.
const (
	// PoolName is the storage pool the harness uses on remote hosts.
	PoolName = "pidreuse"
	// PoolDir is where the pool keeps its volumes when the harness
	// defines it; a pool of that name defined by an admin keeps its own.
	PoolDir = "/var/lib/libvirt/images/pidreuse"
	// VolumePrefix starts the name of every volume the harness makes.
	VolumePrefix = "pidreuse-"
	// completeSuffix names the marker volume written after an upload
	// finished: a volume without it is a partial upload (the uploader
	// died), which the next upload replaces.
	completeSuffix = ".complete"
)

// ErrVolumeNotFound is wrapped by errors about a volume the pool lacks.
var ErrVolumeNotFound = errors.New("volume not found")

// ErrNoPool is returned by OpenPool when the host has no pool of the
// harness's: nothing of ours is stored there.
var ErrNoPool = errors.New("no " + PoolName + " storage pool")

// EnsurePool makes sure the harness's storage pool exists and runs, and
// returns its directory. It is safe when another process does the same at
// once.
func (c *Client) EnsurePool(ctx context.Context) (string, error) {
	for attempt := 0; ; attempt++ {
		dir, err := c.ensurePool(ctx, true)
		if err == nil || attempt == 2 || ctx.Err() != nil {
			return dir, err
		}
		// Another process defined or started it between our lookup and
		// our define: look again.
		time.Sleep(500 * time.Millisecond)
	}
}

// OpenPool is EnsurePool for readers (clean): it starts the pool when it
// is stopped but never defines one; ErrNoPool when there is none.
func (c *Client) OpenPool(ctx context.Context) (string, error) {
	return c.ensurePool(ctx, false)
}

func (c *Client) ensurePool(ctx context.Context, create bool) (string, error) {
	var pool golibvirt.StoragePool
	err := do(ctx, func() error {
		var err error
		pool, err = c.l.StoragePoolLookupByName(PoolName)
		return err
	}, nil)
	if !create && isLibvirtError(err, golibvirt.ErrNoStoragePool) {
		return "", fmt.Errorf("%s: %w", c.target, ErrNoPool)
	}
	if isLibvirtError(err, golibvirt.ErrNoStoragePool) {
		xml, xerr := (&libvirtxml.StoragePool{
			Type: "dir", Name: PoolName,
			Target: &libvirtxml.StoragePoolTarget{Path: PoolDir},
		}).Marshal()
		if xerr != nil {
			return "", fmt.Errorf("storage pool %s: %w", PoolName, xerr)
		}
		err = do(ctx, func() error {
			var err error
			if pool, err = c.l.StoragePoolDefineXML(xml, 0); err != nil {
				return err
			}
			if err := c.l.StoragePoolBuild(pool, golibvirt.StoragePoolBuildNew); err != nil && !isLibvirtError(err, golibvirt.ErrStoragePoolBuilt) {
				return err
			}
			return c.l.StoragePoolSetAutostart(pool, 1)
		}, nil)
	}
	if err != nil {
		return "", fmt.Errorf("storage pool %s on %s (is libvirt's storage driver installed there? libvirt-daemon-driver-storage): %w", PoolName, c.target, err)
	}
	var desc string
	var state uint8
	err = do(ctx, func() error {
		var err error
		if state, _, _, _, err = c.l.StoragePoolGetInfo(pool); err != nil {
			return err
		}
		if golibvirt.StoragePoolState(state) != golibvirt.StoragePoolRunning {
			if err := c.l.StoragePoolCreate(pool, 0); err != nil && !isLibvirtError(err, golibvirt.ErrOperationInvalid) {
				return err
			}
		}
		desc, err = c.l.StoragePoolGetXMLDesc(pool, 0)
		return err
	}, nil)
	if err != nil {
		return "", fmt.Errorf("start storage pool %s on %s: %w", PoolName, c.target, err)
	}
	var px libvirtxml.StoragePool
	if err := px.Unmarshal(desc); err != nil {
		return "", fmt.Errorf("storage pool %s: %w", PoolName, err)
	}
	if px.Target == nil || px.Target.Path == "" {
		return "", fmt.Errorf("storage pool %s on %s has no target dir: it must be a dir pool", PoolName, c.target)
	}
	c.pool = &pool
	return px.Target.Path, nil
}

func (c *Client) needPool() (golibvirt.StoragePool, error) {
	if c.pool == nil {
		return golibvirt.StoragePool{}, errors.New("storage pool not set up: call EnsurePool first")
	}
	return *c.pool, nil
}

func (c *Client) lookupVolume(ctx context.Context, name string) (golibvirt.StorageVol, error) {
	pool, err := c.needPool()
	if err != nil {
		return golibvirt.StorageVol{}, err
	}
	var vol golibvirt.StorageVol
	err = do(ctx, func() error {
		var err error
		vol, err = c.l.StorageVolLookupByName(pool, name)
		return err
	}, nil)
	if isLibvirtError(err, golibvirt.ErrNoStorageVol) {
		return golibvirt.StorageVol{}, fmt.Errorf("volume %s in pool %s: %w", name, PoolName, ErrVolumeNotFound)
	}
	if err != nil {
		return golibvirt.StorageVol{}, fmt.Errorf("look up volume %s: %w", name, err)
	}
	return vol, nil
}

// VolumePath is where a volume of the pool lives on the libvirt host.
func (c *Client) VolumePath(ctx context.Context, name string) (string, error) {
	vol, err := c.lookupVolume(ctx, name)
	if err != nil {
		return "", err
	}
	var p string
	err = do(ctx, func() error {
		var err error
		p, err = c.l.StorageVolGetPath(vol)
		return err
	}, nil)
	return p, err
}

// createVolume makes an empty volume. libvirt refuses a name that is taken
// (ErrStorageVolExist): that refusal is what lets concurrent uploaders
// agree on who uploads.
func (c *Client) createVolume(ctx context.Context, v libvirtxml.StorageVolume) (golibvirt.StorageVol, error) {
	pool, err := c.needPool()
	if err != nil {
		return golibvirt.StorageVol{}, err
	}
	xml, err := v.Marshal()
	if err != nil {
		return golibvirt.StorageVol{}, fmt.Errorf("volume %s: %w", v.Name, err)
	}
	var vol golibvirt.StorageVol
	err = do(ctx, func() error {
		var err error
		vol, err = c.l.StorageVolCreateXML(pool, xml, 0)
		return err
	}, nil)
	return vol, err
}

func rawVolume(name string, size int64) libvirtxml.StorageVolume {
	return libvirtxml.StorageVolume{
		Name:       name,
		Capacity:   &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: uint64(size)},
		Allocation: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: 0},
		Target:     &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "raw"}},
	}
}

// UploadOnce puts the local file src into the pool as volume name, unless
// a complete volume of that name is there already (name it by the file's
// content hash). When another process is uploading it at the same time,
// it waits for that upload instead of making a second. It returns the
// volume's path on the libvirt host and whether this call uploaded.
func (c *Client) UploadOnce(ctx context.Context, src, name string, progress func(string)) (path string, uploaded bool, err error) {
	for {
		if _, err := c.lookupVolume(ctx, name+completeSuffix); err == nil {
			p, err := c.VolumePath(ctx, name)
			return p, false, err
		} else if !errors.Is(err, ErrVolumeNotFound) {
			return "", false, err
		}
		err := c.UploadVolume(ctx, src, name, false)
		if err == nil {
			if _, err := c.createVolume(ctx, rawVolume(name+completeSuffix, 0)); err != nil && !isLibvirtError(err, golibvirt.ErrStorageVolExist) {
				return "", false, fmt.Errorf("mark volume %s complete: %w", name, err)
			}
			p, err := c.VolumePath(ctx, name)
			return p, true, err
		}
		if !isLibvirtError(err, golibvirt.ErrStorageVolExist) {
			return "", false, err
		}
		// Someone else's upload, running or dead.
		progress(fmt.Sprintf("%s: volume %s is being uploaded by another run; waiting", c.target, name))
		if err := c.waitComplete(ctx, name); err != nil {
			return "", false, err
		}
	}
}

// partialUploadTimeout is how long a volume may stay without its complete
// marker before it counts as left by a dead uploader and is replaced.
const partialUploadTimeout = 20 * time.Minute

func (c *Client) waitComplete(ctx context.Context, name string) error {
	deadline := time.Now().Add(partialUploadTimeout)
	for time.Now().Before(deadline) {
		if _, err := c.lookupVolume(ctx, name+completeSuffix); err == nil {
			return nil
		}
		if _, err := c.lookupVolume(ctx, name); errors.Is(err, ErrVolumeNotFound) {
			return nil // the uploader gave up and removed it: try ourselves
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the upload of volume %s: %w", name, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
	return c.DeleteVolume(ctx, name)
}

// UploadVolume creates volume name in the pool from the local file src
// through libvirt's volume upload stream. replace deletes a volume of that
// name first; without it an existing volume is an error (libvirt's
// ErrStorageVolExist). A failed upload removes the volume.
func (c *Client) UploadVolume(ctx context.Context, src, name string, replace bool) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("upload %s: %w", src, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("upload %s: %w", src, err)
	}
	if replace {
		if err := c.DeleteVolume(ctx, name); err != nil {
			return err
		}
	}
	vol, err := c.createVolume(ctx, rawVolume(name, st.Size()))
	if err != nil {
		return fmt.Errorf("create volume %s on %s: %w", name, c.target, err)
	}
	err = doWithin(ctx, "upload of "+name, deadline.Transfer, func() error {
		return c.l.StorageVolUpload(vol, f, 0, uint64(st.Size()), 0)
	}, nil)
	if err != nil {
		_ = c.DeleteVolume(context.Background(), name)
		return fmt.Errorf("upload %s to volume %s on %s: %w", src, name, c.target, err)
	}
	return nil
}

// CreateOverlayVolume makes volume name a qcow2 overlay backed by the qcow2
// volume at backingPath, of the backing file's virtual size: the remote
// counterpart of CreateOverlay. It returns the overlay's path.
func (c *Client) CreateOverlayVolume(ctx context.Context, name, backingPath string, virtualSize uint64) (string, error) {
	qcow2 := &libvirtxml.StorageVolumeTargetFormat{Type: "qcow2"}
	_, err := c.createVolume(ctx, libvirtxml.StorageVolume{
		Name:         name,
		Capacity:     &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: virtualSize},
		Target:       &libvirtxml.StorageVolumeTarget{Format: qcow2},
		BackingStore: &libvirtxml.StorageVolumeBackingStore{Path: backingPath, Format: qcow2},
	})
	if err != nil {
		return "", fmt.Errorf("create overlay volume %s on %s: %w", name, c.target, err)
	}
	return c.VolumePath(ctx, name)
}

// RefreshPool rescans the pool's dir, so files that appeared there
// without libvirt's volume API (a console log virtlogd writes) become
// volumes that can be looked up, downloaded and deleted.
func (c *Client) RefreshPool(ctx context.Context) error {
	pool, err := c.needPool()
	if err != nil {
		return err
	}
	if err := do(ctx, func() error { return c.l.StoragePoolRefresh(pool, 0) }, nil); err != nil {
		return fmt.Errorf("refresh pool %s on %s: %w", PoolName, c.target, err)
	}
	return nil
}

// DownloadVolume writes volume name to the local file dst. The pool is
// refreshed first, so a file that appeared in its dir (a console log
// virtlogd writes) is found.
func (c *Client) DownloadVolume(ctx context.Context, name, dst string) error {
	if err := c.RefreshPool(ctx); err != nil {
		return err
	}
	vol, err := c.lookupVolume(ctx, name)
	if err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("download volume %s: %w", name, err)
	}
	err = doWithin(ctx, "download of "+name, deadline.Transfer, func() error { return c.l.StorageVolDownload(vol, f, 0, 0, 0) }, nil)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download volume %s from %s to %s: %w", name, c.target, dst, err)
	}
	return nil
}

// DeleteVolume removes a volume and, for an uploaded one, its complete
// marker. A missing volume is not an error, so cleanup can run twice.
func (c *Client) DeleteVolume(ctx context.Context, name string) error {
	var errs []error
	for _, n := range []string{name + completeSuffix, name} {
		vol, err := c.lookupVolume(ctx, n)
		if errors.Is(err, ErrVolumeNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = do(ctx, func() error { return c.l.StorageVolDelete(vol, 0) }, nil)
		if err != nil && !isLibvirtError(err, golibvirt.ErrNoStorageVol) {
			errs = append(errs, fmt.Errorf("delete volume %s on %s: %w", n, c.target, err))
		}
	}
	return errors.Join(errs...)
}

// ListVolumes returns the names of the pool's volumes that start with
// prefix, sorted, complete markers left out. The pool is refreshed first.
func (c *Client) ListVolumes(ctx context.Context, prefix string) ([]string, error) {
	pool, err := c.needPool()
	if err != nil {
		return nil, err
	}
	var vols []golibvirt.StorageVol
	err = do(ctx, func() error {
		if err := c.l.StoragePoolRefresh(pool, 0); err != nil {
			return err
		}
		var err error
		vols, _, err = c.l.StoragePoolListAllVolumes(pool, 1, 0)
		return err
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("list volumes of pool %s on %s: %w", PoolName, c.target, err)
	}
	var names []string
	for _, v := range vols {
		if strings.HasPrefix(v.Name, prefix) && !strings.HasSuffix(v.Name, completeSuffix) {
			names = append(names, v.Name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// QCOW2VirtualSize reads the virtual disk size from a qcow2 file's header
// (big-endian uint64 at offset 24, after the "QFI\xfb" magic), which an
// overlay of it must have.
func QCOW2VirtualSize(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var hdr [32]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return 0, fmt.Errorf("%s: qcow2 header: %w", path, err)
	}
	if string(hdr[:4]) != "QFI\xfb" {
		return 0, fmt.Errorf("%s is not a qcow2 image", path)
	}
	return binary.BigEndian.Uint64(hdr[24:32]), nil
}
