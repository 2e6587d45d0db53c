source "$(dirname "$0")/helper.sh"
echo "sum=$(add 2 3) twice=$(twice 7)"
