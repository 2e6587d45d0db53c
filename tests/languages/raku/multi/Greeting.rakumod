unit module Greeting;

sub greet(Str $who --> Str) is export {
    "hello, $who"
}
