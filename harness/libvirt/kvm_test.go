package libvirt

import (
	"os"
	"testing"
)

func TestDeviceRW(t *testing.T) {
	tests := []struct {
		name string
		perm os.FileMode
		uid  string
		gids []string
		want bool
	}{
		{"root always", 0o600, "0", []string{"0"}, true},
		{"0600 root:root, other user", 0o600, "64055", []string{"107", "64055"}, false},
		{"0660 root:kvm, member of kvm", 0o660, "64055", []string{"107", "64055"}, true},
		{"0660 root:kvm, not a member", 0o660, "1000", []string{"1000"}, false},
		{"0666 world", 0o666, "1000", []string{"1000"}, true},
		{"0640 group read only", 0o640, "64055", []string{"107"}, false},
		{"owner", 0o600, "5", []string{"5"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The device is owned by uid 5 in the owner case, by
			// root otherwise; its group is kvm (107).
			fileUID := uint32(0)
			if tt.name == "owner" {
				fileUID = 5
			}
			if got := deviceRW(tt.perm, fileUID, 107, tt.uid, tt.gids); got != tt.want {
				t.Errorf("deviceRW(%04o, uid %s, gids %v) = %v, want %v", tt.perm, tt.uid, tt.gids, got, tt.want)
			}
		})
	}
}

func TestPVMOnly(t *testing.T) {
	for _, tt := range []struct {
		modules []string
		wantPVM bool
	}{
		{[]string{"kvm", "kvm_pvm"}, true},
		{[]string{"kvm", "kvm_intel"}, false},
		{[]string{"kvm", "kvm_amd", "kvm_pvm"}, false},
		{[]string{"kvm"}, false},
		{nil, false},
	} {
		dir := t.TempDir()
		for _, m := range tt.modules {
			if err := os.Mkdir(dir+"/"+m, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if got := pvmOnly(dir) != ""; got != tt.wantPVM {
			t.Errorf("modules %v: pvmOnly = %v, want %v", tt.modules, got, tt.wantPVM)
		}
	}
}
