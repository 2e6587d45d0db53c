:- initialization(main, main).
:- use_module(helper).

main :-
    add(2, 3, Sum),
    twice(7, Twice),
    format("sum=~w twice=~w~n", [Sum, Twice]).
