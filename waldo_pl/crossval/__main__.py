from waldo_pl.crossval.cli import main

main()
