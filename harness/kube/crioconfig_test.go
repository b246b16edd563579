package kube

import "testing"

func TestParsePinning(t *testing.T) {
	cases := []struct {
		name, config string
		want         Pinning
		err          bool
	}{
		{"1.17 default", "[crio.runtime]\n# **DEPRECATED** …\n# manage_network_ns_lifecycle = false\n\n# manage_ns_lifecycle determines whether we pin\nmanage_ns_lifecycle = false\n", Pinning{"manage_ns_lifecycle", false}, false},
		{"1.17 forced on", "[crio.runtime]\n# manage_network_ns_lifecycle = false\nmanage_ns_lifecycle = true\n", Pinning{"manage_ns_lifecycle", true}, false},
		{"1.16", "[crio.runtime]\nmanage_network_ns_lifecycle = false\n", Pinning{"manage_network_ns_lifecycle", false}, false},
		{"1.34: no switch, always pins", "[crio.runtime]\ndrop_infra_ctr = true\npinns_path = \"/usr/local/bin/pinns\"\n", Pinning{Pins: true}, false},
		{"garbage", "Error: unknown command", Pinning{}, true},
		{"odd value", "[crio.runtime]\nmanage_ns_lifecycle = maybe\n", Pinning{}, true},
	}
	for _, c := range cases {
		got, err := ParsePinning(c.config)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v (error %v)", c.name, got, err, c.want, c.err)
		}
	}
}
