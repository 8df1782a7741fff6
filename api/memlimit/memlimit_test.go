package memlimit

import "testing"

func TestSoft(t *testing.T) {
	for _, tc := range []struct {
		name       string
		gomemlimit string
		cgroupMax  string
		floor      int64
		want       int64
		wantOK     bool
	}{
		{name: "1 GiB container", cgroupMax: "1073741824\n", want: 1073741824 / 100 * 75, wantOK: true},
		{name: "no limit", cgroupMax: "max\n"},
		{name: "no cgroup file", cgroupMax: ""},
		{name: "garbage", cgroupMax: "lots"},
		{name: "GOMEMLIMIT wins", gomemlimit: "50MiB", cgroupMax: "1073741824\n"},
		{name: "below the floor", cgroupMax: "8388608\n", floor: 8 << 20},
		{name: "at the floor", cgroupMax: "16777216\n", floor: 16777216 / 100 * 75, want: 16777216 / 100 * 75, wantOK: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Soft(tc.gomemlimit, tc.cgroupMax, 75, tc.floor)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("Soft(%q, %q, 75, %d) = %d, %v; want %d, %v", tc.gomemlimit, tc.cgroupMax, tc.floor, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
