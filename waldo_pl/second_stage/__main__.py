from waldo_pl.second_stage.training import main

main()
