module util
  use units, only: scale
  implicit none
contains
  integer function twice(n)
    integer, intent(in) :: n
    twice = scale * n
  end function twice
end module util
