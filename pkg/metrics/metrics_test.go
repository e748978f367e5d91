package metrics

import "testing"

func TestCloseLabel(t *testing.T) {
	cases := map[int]string{
		1000: "1000", 1001: "1001", 1002: "1002", 1003: "1003", 1005: "1005", 1006: "1006",
		1007: "1007", 1008: "1008", 1009: "1009", 1010: "1010", 1011: "1011", 1012: "1012",
		1013: "1013", 1014: "1014", 1015: "1015",
		1004: "other", 1016: "other", 999: "other", 0: "other", -1: "other", 2000: "other",
		2999: "other", 3000: "3xxx", 3999: "3xxx", 4000: "4xxx", 4999: "4xxx", 5000: "other", 65535: "other",
	}
	for code, want := range cases {
		if got := CloseLabel(code); got != want {
			t.Errorf("CloseLabel(%d) = %q, want %q", code, got, want)
		}
	}
}

// Every code a client can put in a close frame (0-65535) makes at most 18 series.
func TestClosesSeriesBounded(t *testing.T) {
	m := New(func() float64 { return 0 }, func() float64 { return 0 })
	for code := range 65536 {
		m.Closed(code)
	}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "socketdock_closes_total" {
			continue
		}
		if n := len(f.GetMetric()); n != 18 {
			t.Fatalf("%d series for every possible close code, want 18", n)
		}
		for _, s := range f.GetMetric() {
			want := 1.0
			switch s.GetLabel()[0].GetValue() {
			case "3xxx", "4xxx":
				want = 1000
			case "other":
				want = 65536 - 2000 - 15
			}
			if got := s.GetCounter().GetValue(); got != want {
				t.Errorf("%s: %v, want %v", s.GetLabel()[0].GetValue(), got, want)
			}
		}
		return
	}
	t.Fatal("no socketdock_closes_total")
}
