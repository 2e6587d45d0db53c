:- initialization(main, main).

main :-
    format(user_error, "failing on purpose~n", []),
    halt(3).
