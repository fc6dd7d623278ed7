from edgecount.cli import main

main()
