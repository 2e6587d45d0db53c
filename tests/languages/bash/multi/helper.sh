add() { echo $(( $1 + $2 )); }
twice() { echo $(( 2 * $1 )); }
