"""Runs ON the host (sent to `python3 -`): can KVM really run a guest here?

Prints one line: `ok <module>` or `no <reason>`. Flags and /dev/kvm are not enough:
on some kernels /dev/kvm opens but only KVM_PVM is offered and normal guests hang
(DESIGN §5). So we create a VM with one vCPU in real mode whose only instruction is
`hlt`, run it, and expect the KVM_EXIT_HLT exit. Run it under `timeout`.
"""

import ctypes
import fcntl
import mmap
import os
import struct
import sys

KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_GET_VCPU_MMAP_SIZE = 0xAE04
KVM_CREATE_VCPU = 0xAE41
KVM_SET_USER_MEMORY_REGION = 0x4020AE46
KVM_RUN = 0xAE80
KVM_GET_SREGS = 0x8138AE83
KVM_SET_SREGS = 0x4138AE84
KVM_SET_REGS = 0x4090AE82
KVM_EXIT_HLT = 5


def flags() -> set[str]:
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def module() -> str:
    for name in ("kvm_intel", "kvm_amd", "kvm_pvm"):
        if os.path.exists(f"/sys/module/{name}"):
            return name
    return "unknown"


def probe() -> str:
    if not {"vmx", "svm"} & flags():
        return "no the CPU has no vmx/svm flag (no hardware virtualization exposed to this host)"
    if not os.path.exists("/dev/kvm"):
        return "no /dev/kvm is missing (kvm module not loaded, or not passed into this host)"
    if module() == "kvm_pvm":
        return "no the kernel offers only kvm_pvm, which runs PVM guest kernels, not normal VMs"
    try:
        kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"no /dev/kvm cannot be opened: {exc.strerror}"
    if fcntl.ioctl(kvm, KVM_GET_API_VERSION) != 12:
        return "no unexpected KVM API version"
    vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
    memory = mmap.mmap(-1, 0x10000)
    memory[0x1000] = 0xF4  # hlt
    address = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    fcntl.ioctl(vm, KVM_SET_USER_MEMORY_REGION, struct.pack("IIQQQ", 0, 0, 0, 0x10000, address))
    vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
    size = fcntl.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE)
    run = mmap.mmap(vcpu, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    sregs = bytearray(312)
    fcntl.ioctl(vcpu, KVM_GET_SREGS, sregs)
    struct.pack_into("Q", sregs, 0, 0)  # cs.base
    struct.pack_into("H", sregs, 12, 0)  # cs.selector
    fcntl.ioctl(vcpu, KVM_SET_SREGS, bytes(sregs))
    regs = [0] * 18
    regs[16], regs[17] = 0x1000, 0x2  # rip, rflags
    fcntl.ioctl(vcpu, KVM_SET_REGS, struct.pack("18Q", *regs))
    fcntl.ioctl(vcpu, KVM_RUN, 0)
    reason = struct.unpack_from("I", run, 8)[0]
    if reason != KVM_EXIT_HLT:
        return f"no a test guest did not run (exit reason {reason}, module {module()})"
    return f"ok {module()}"


if __name__ == "__main__":
    try:
        print(probe())
    except OSError as exc:
        print(f"no a test guest could not be created: {exc.strerror} (module {module()})")
    sys.stdout.flush()
