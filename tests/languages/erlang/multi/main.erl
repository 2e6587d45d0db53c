-module(main).
-export([main/0]).

main() ->
    Shapes = [{square, 3}, {rectangle, 2, 5}],
    Areas = [geometry:area(S) || S <- Shapes],
    io:format("areas=~w total=~w~n", [Areas, lists:sum(Areas)]).
