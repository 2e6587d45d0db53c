; print_line(n: edi, label: rsi, label_len: edx): writes label, n in decimal, "\n".
        global  print_line
        section .bss
digits: resb    24
        section .text
print_line:
        push    rdi
        mov     eax, 1                  ; write(1, label, label_len)
        mov     edi, 1
        syscall
        pop     rax                     ; the number
        lea     rsi, [rel digits + 23]
        mov     byte [rsi], 10
        mov     ecx, 10
.next:  xor     edx, edx
        div     ecx
        add     dl, '0'
        dec     rsi
        mov     [rsi], dl
        test    eax, eax
        jnz     .next
        lea     rdx, [rel digits + 24]
        sub     rdx, rsi                ; length
        mov     eax, 1
        mov     edi, 1
        syscall
        ret
