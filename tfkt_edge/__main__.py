from tfkt_edge.cli.main import main

main()
