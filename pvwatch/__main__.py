from pvwatch.cli import main

main()
