package uring

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BufRing is a provided-buffer ring (IORING_REGISTER_PBUF_RING): a ring of
// buffer descriptors shared with the kernel plus the buffers themselves.
// Both live in anonymous mmap'ed memory outside the Go heap, so the garbage
// collector never sees or moves them. Buffer i occupies bytes
// [i*size, (i+1)*size) of the buffer area and has buffer id i.
//
// A BufRing is used by one goroutine (the ring's owner). Buffers picked by
// the kernel are returned with Add and made visible with Publish.
type BufRing struct {
	ring    []byte // entries * 16 bytes of io_uring_buf
	mem     []byte // entries * size bytes of buffers
	entries uint32
	mask    uint32
	size    int
	bgid    uint16
	tail    uint16 // local tail, published by Publish
	shift   uint32 // bit position of the tail in the 32-bit word at offset 12
}

// RegisterBufRing allocates a buffer ring of entries buffers (a power of two,
// at most 32768) of size bytes each, registers it as buffer group bgid and
// hands every buffer to the kernel.
func (r *Ring) RegisterBufRing(entries uint32, size int, bgid uint16) (*BufRing, error) {
	if entries == 0 || entries > 1<<15 || entries&(entries-1) != 0 {
		return nil, fmt.Errorf("buffer ring: %d entries is not a power of two in [1, 32768]", entries)
	}
	if size <= 0 {
		return nil, fmt.Errorf("buffer ring: buffer size %d", size)
	}
	b := &BufRing{entries: entries, mask: entries - 1, size: size, bgid: bgid}
	// The tail is a uint16 at byte 14; sync/atomic has no 16-bit store, so
	// it is written through the aligned 32-bit word at byte 12 whose other
	// half is entry 0's bid (written only by us).
	one := uint16(1)
	if *(*byte)(unsafe.Pointer(&one)) == 1 {
		b.shift = 16 // little endian: byte 14 is the high half
	}
	var err error
	ringSize := int(entries) * int(unsafe.Sizeof(buf{}))
	if ringSize < unix.Getpagesize() {
		ringSize = unix.Getpagesize()
	}
	b.ring, err = unix.Mmap(-1, 0, ringSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("buffer ring: mmap ring: %w", err)
	}
	b.mem, err = unix.Mmap(-1, 0, int(entries)*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE)
	if err != nil {
		b.Free()
		return nil, fmt.Errorf("buffer ring: mmap buffers: %w", err)
	}
	reg := bufReg{RingAddr: uint64(uintptr(unsafe.Pointer(&b.ring[0]))), RingEntries: entries, BGID: bgid}
	if _, err := r.register(registerPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		b.Free()
		return nil, fmt.Errorf("register buffer ring: %w", err)
	}
	for i := uint32(0); i < entries; i++ {
		b.Add(uint16(i))
	}
	b.Publish()
	return b, nil
}

// UnregisterBufRing unregisters b from the ring. Free it afterwards.
func (r *Ring) UnregisterBufRing(b *BufRing) error {
	reg := bufReg{BGID: b.bgid}
	if _, err := r.register(unregisterPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		return fmt.Errorf("unregister buffer ring: %w", err)
	}
	return nil
}

// Free unmaps the ring and its buffers. The ring must be unregistered (or
// its io_uring closed) and no request may still own one of its buffers.
func (b *BufRing) Free() {
	if b.mem != nil {
		_ = unix.Munmap(b.mem)
		b.mem = nil
	}
	if b.ring != nil {
		_ = unix.Munmap(b.ring)
		b.ring = nil
	}
}

// BGID returns the buffer group id.
func (b *BufRing) BGID() uint16 { return b.bgid }

// Entries returns the number of buffers.
func (b *BufRing) Entries() uint32 { return b.entries }

// Size returns the size of one buffer.
func (b *BufRing) Size() int { return b.size }

// Buf returns the first n bytes of buffer bid. The slice aliases memory the
// kernel may overwrite once the buffer is added back: do not keep it.
func (b *BufRing) Buf(bid uint16, n int) []byte {
	off := int(bid) * b.size
	return b.mem[off : off+n : off+b.size]
}

// Add queues buffer bid for return to the kernel; it becomes visible at the
// next Publish. Adding more buffers than entries between two Publish calls
// overwrites descriptors and must not be done.
func (b *BufRing) Add(bid uint16) {
	idx := uint32(b.tail) & b.mask
	d := (*buf)(unsafe.Pointer(&b.ring[idx*uint32(unsafe.Sizeof(buf{}))]))
	d.Addr = uint64(uintptr(unsafe.Pointer(&b.mem[int(bid)*b.size])))
	d.Len = uint32(b.size)
	if idx == 0 {
		// bid of entry 0 shares a 32-bit word with the tail: write both
		// through that word so the published tail is never clobbered.
		w := (*uint32)(unsafe.Pointer(&b.ring[12]))
		cur := atomic.LoadUint32(w)
		var v uint32
		if b.shift == 16 {
			v = cur&0xffff0000 | uint32(bid)
		} else {
			v = cur&0x0000ffff | uint32(bid)<<16
		}
		atomic.StoreUint32(w, v)
	} else {
		d.BID = bid
	}
	b.tail++
}

// Publish makes every buffer added since the last Publish visible to the kernel.
func (b *BufRing) Publish() {
	w := (*uint32)(unsafe.Pointer(&b.ring[12]))
	cur := atomic.LoadUint32(w)
	var v uint32
	if b.shift == 16 {
		v = cur&0x0000ffff | uint32(b.tail)<<16
	} else {
		v = cur&0xffff0000 | uint32(b.tail)
	}
	atomic.StoreUint32(w, v)
}

// Tail returns the local tail (the number of buffers ever added, mod 65536).
func (b *BufRing) Tail() uint16 { return b.tail }
