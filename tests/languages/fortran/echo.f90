! Copies standard input to standard output byte for byte (stream access).
program echo
  use, intrinsic :: iso_fortran_env, only: input_unit, output_unit
  implicit none
  character(len=1) :: c
  integer :: status
  open (unit=10, file='/dev/stdin', access='stream', form='unformatted', action='read')
  open (unit=11, file='/dev/stdout', access='stream', form='unformatted', action='write')
  do
    read (10, iostat=status) c
    if (status /= 0) exit
    write (11) c
  end do
  close (11)
end program echo
