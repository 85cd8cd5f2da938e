/* The native start of a container (x86_64): clone a child that shares this address
 * space (CLONE_VM | CLONE_VFORK, as posix_spawn does) and, in it, make a compiled list
 * of raw syscalls, then exec. Nothing here calls libc or touches Python's heap: the
 * child reads the program and the buffers its arguments point to, and writes only its
 * own stack and the register file in the context. See nsutil/_native.py for the
 * layouts and for why; scripts/assemble-trampoline turns this file into the bytes
 * nsutil/_native_code.py holds (a test checks they match).
 *
 *   long start(struct context *ctx)      the child's pid, or -errno from the clone
 *
 * context (u64 each):   0 clone's syscall number, 8..40 its five arguments,
 *                       48 the program, 56 the error fd, 64 the mask blocked around the
 *                       clone (all), 72 the caller's mask (saved), 80 registers[16]
 * instruction (u64 each, 128 bytes):
 *   0 syscall number (-1: load the int32 args[0] points to; -2: record (index, 0) and
 *     exit with args[0])
 *   8..48 args[6]    56 which args name a register (bit i: args[i] is its index)
 *   64 register the result goes to (>= 16: none)
 *   72 flags: 1 a result > 0 exits with fail_code; 2 record every error
 *   80 errnos that count as success: go to on_ok (bit N: errno N; bit 0: any >= 64)
 *   88 errnos that go to on_alt (the same way)
 *   96 on_ok, 104 on_alt (in instructions, relative)    112 fail_code
 * Any other error writes (index, errno) as two u32 to the error fd and exits with the
 * instruction's fail_code.
 */
        .intel_syntax noprefix
        .text
        .globl start
start:
        push rbx
        push r12
        push r13
        mov r12, rdi
        /* every signal blocked across the clone: no handler may run in the child */
        mov eax, 14                     /* rt_sigprocmask(SIG_SETMASK, all, saved, 8) */
        mov edi, 2
        lea rsi, [r12 + 64]
        lea rdx, [r12 + 72]
        mov r10d, 8
        syscall
        mov rax, [r12]
        mov rdi, [r12 + 8]
        mov rsi, [r12 + 16]
        mov rdx, [r12 + 24]
        mov r10, [r12 + 32]
        mov r8, [r12 + 40]
        syscall
        test rax, rax
        jz .Lchild
        mov rbx, rax
        mov eax, 14                     /* rt_sigprocmask(SIG_SETMASK, saved, NULL, 8) */
        mov edi, 2
        lea rsi, [r12 + 72]
        xor edx, edx
        mov r10d, 8
        syscall
        mov rax, rbx
        pop r13
        pop r12
        pop rbx
        ret

        .macro ARG i, reg
        mov \reg, [r13 + 8 + 8 * \i]
        bt rcx, \i
        jnc 1f
        mov \reg, [r12 + 80 + \reg * 8]
1:
        .endm

.Lchild:                                /* on its own stack; r12 is the context */
        mov r13, [r12 + 48]
.Lloop:
        mov rax, [r13]
        cmp rax, -2
        je .Lexit_op
        mov rcx, [r13 + 56]
        ARG 0, rdi
        ARG 1, rsi
        ARG 2, rdx
        ARG 3, r10
        ARG 4, r8
        ARG 5, r9
        cmp rax, -1
        jne 2f
        movsxd rax, dword ptr [rdi]
        jmp 3f
2:
        syscall
3:
        mov rcx, [r13 + 64]
        cmp rcx, 16
        jae 4f
        mov [r12 + 80 + rcx * 8], rax
4:
        test byte ptr [r13 + 72], 1
        jz 5f
        test rax, rax
        jg .Lexit_code
5:
        cmp rax, -4095
        jae .Lerror
.Lok:
        mov rax, [r13 + 96]
.Ladvance:
        shl rax, 7
        add r13, rax
        jmp .Lloop
.Lerror:
        neg rax
        mov rbx, rax
        test byte ptr [r13 + 72], 2
        jz 6f
        call .Lrecord
6:
        mov rdx, rbx                    /* the errno's bit; bit 0 for those >= 64 */
        cmp rdx, 64
        jb 7f
        xor edx, edx
7:
        bt qword ptr [r13 + 80], rdx
        jc .Lok
        bt qword ptr [r13 + 88], rdx
        jnc .Lfail
        mov rax, [r13 + 104]
        jmp .Ladvance
.Lfail:
        test byte ptr [r13 + 72], 2
        jnz .Lexit_code                 /* recorded already */
        call .Lrecord
.Lexit_code:
        mov rdi, [r13 + 112]
        jmp .Lexit
.Lexit_op:                              /* recorded with errno 0: the end of a chain */
        xor ebx, ebx
        call .Lrecord
        mov rdi, [r13 + 8]
.Lexit:
        mov eax, 231                    /* exit_group */
        syscall
        ud2

.Lrecord:                               /* write(errfd, {index, errno (rbx)}, 8) */
        mov rax, r13
        sub rax, [r12 + 48]
        shr rax, 7
        sub rsp, 16
        mov [rsp], eax
        mov [rsp + 4], ebx
        mov eax, 1
        mov rdi, [r12 + 56]
        mov rsi, rsp
        mov edx, 8
        syscall
        add rsp, 16
        ret
