; Prints "sum=5" using add from lib/math.asm and print_number from print.asm.
        global  _start
        extern  add, print_line
        section .data
label:  db      "sum="
        section .text
_start: mov     edi, 2
        mov     esi, 3
        call    add             ; eax = 5
        mov     edi, eax
        lea     rsi, [rel label]
        mov     edx, 4
        call    print_line
        mov     eax, 60
        xor     edi, edi
        syscall
