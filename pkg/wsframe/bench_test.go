package wsframe

import (
	"strconv"
	"testing"
)

// The event loop's hot path: parse, unmask and validate one whole frame; then write one.
func BenchmarkDecodeFrame(b *testing.B) {
	for _, size := range []int{64, 4096, 65536} {
		for _, op := range []byte{1, 2} {
			name := "binary"
			if op == 1 {
				name = "text"
			}
			b.Run(name+"/"+strconv.Itoa(size), func(b *testing.B) {
				payload := make([]byte, size)
				for i := range payload {
					payload[i] = 'a' + byte(i%26)
				}
				src := clientFrame(true, op, payload)
				buf := make([]byte, len(src))
				var d Decoder
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					copy(buf, src) // the decoder unmasks in place
					if ev, _, err := d.Next(buf); err != nil || ev.Kind != Message {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	for _, size := range []int{64, 4096, 65536} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			payload := make([]byte, size)
			out := make([]byte, 0, FrameSize(size))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				out = AppendFrame(out[:0], OpBinary, payload)
			}
		})
	}
}
