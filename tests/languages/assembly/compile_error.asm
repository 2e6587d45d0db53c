        global  _start
        section .text
_start: mov     eax, undefined_symbol_here
        frobnicate eax
