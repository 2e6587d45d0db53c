(* Copies standard input to standard output byte for byte. *)
let () =
  set_binary_mode_in stdin true;
  set_binary_mode_out stdout true;
  let buffer = Bytes.create 4096 in
  let rec loop () =
    let got = input stdin buffer 0 (Bytes.length buffer) in
    if got > 0 then begin
      output stdout buffer 0 got;
      loop ()
    end
  in
  loop ();
  flush stdout
