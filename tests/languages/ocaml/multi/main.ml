let () = Printf.printf "twice=%d\n" (Util.twice 21)
