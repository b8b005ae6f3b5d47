from qortex.cli import main

main()
